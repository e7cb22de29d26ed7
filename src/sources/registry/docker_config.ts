/**
 * Credentials from a docker config file, found as docker (and so crane and
 * skopeo) finds them: `credHelpers[host]`, else `credsStore`, runs
 * `docker-credential-<name> get` with the server on stdin; without a helper,
 * `auths[host]` (`auth` base64 `user:pass`, or `username`/`password`, plus
 * `identitytoken`). A helper is authoritative, as in docker's native store:
 * when it has nothing for the host, `auths` is not consulted.
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { isObject } from "../../model/manifest.ts";
import { importNode } from "../../runtime/_import.ts";
import { type ProgramOutcome, runProgram } from "../../runtime/run_program.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import { DOCKER_HUB } from "../../model/image_reference.ts";
import { type RegistryCredentials, registryKey } from "./credentials.ts";

/**
 * Credentials found for a registry, or why there are none where some were
 * configured (told to the user if the registry then asks for credentials).
 *
 * @example
 * ```ts
 * import type { CredentialsFound } from "./docker_config.ts";
 * const found: CredentialsFound = {
 *   note: "docker-credential-desktop is configured, but this runtime cannot run programs",
 * };
 * ```
 */
export interface CredentialsFound {
  /** The credentials, if any. */
  credentials?: RegistryCredentials;
  /** Why there are none although some source is configured. */
  note?: string;
}

/**
 * Options for `dockerConfigCredentials`.
 *
 * @example
 * ```ts
 * import type { DockerConfigOptions } from "./docker_config.ts";
 * const options: DockerConfigOptions = { path: "/run/secrets/auth.json" };
 * ```
 */
export interface DockerConfigOptions {
  /**
   * The config file.
   * @default {"$DOCKER_CONFIG/config.json, else ~/.docker/config.json"}
   */
  path?: string;
  /**
   * Milliseconds a credential helper may take.
   * @default {60000}
   */
  timeout?: number;
  /** Runs a helper (tests and runtimes may replace it). */
  run?: typeof runProgram;
}

// Docker Hub's key in config files and for credential helpers.
const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The credentials a docker config file gives for `registry` (as named in
 * image references: `docker.io`, `ghcr.io`, `localhost:5000`). A missing
 * file, or a runtime without file access, gives none. A credential helper
 * that is not on `PATH`, fails or answers nonsense throws `DockerSaveError`
 * `BAD_CREDENTIALS`; where the runtime cannot run programs, the helper is
 * skipped with a `note`.
 *
 * @example
 * ```ts
 * import { dockerConfigCredentials } from "./docker_config.ts";
 * const { credentials, note } = await dockerConfigCredentials("ghcr.io");
 * ```
 */
export async function dockerConfigCredentials(
  registry: string,
  options: DockerConfigOptions = {},
): Promise<CredentialsFound> {
  const path = options.path ?? await defaultDockerConfigPath();
  if (path === undefined) return {};
  const config = await readConfig(path);
  if (!config) return {};
  const key = registryKey(registry);
  const helpers = isObject(config.credHelpers) ? config.credHelpers : {};
  const perHost = Object.entries(helpers).find(([host, name]) =>
    registryKey(host) === key && typeof name === "string" && name !== ""
  );
  if (perHost) {
    return await fromHelper(
      perHost[1] as string,
      `credHelpers in ${path}`,
      registry,
      options,
    );
  }
  if (typeof config.credsStore === "string" && config.credsStore !== "") {
    return await fromHelper(
      config.credsStore,
      `credsStore in ${path}`,
      registry,
      options,
    );
  }
  const auths = isObject(config.auths) ? config.auths : {};
  for (const [host, entry] of Object.entries(auths)) {
    if (registryKey(host) !== key) continue;
    const credentials = entryCredentials(entry);
    if (credentials) return { credentials };
  }
  return {};
}

async function readConfig(
  path: string,
): Promise<Record<string, unknown> | undefined> {
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs) return undefined;
  try {
    const value = JSON.parse(await fs.readFile(path, "utf8"));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined; // missing or not JSON: as if there were none
  }
}

async function fromHelper(
  name: string,
  where: string,
  registry: string,
  options: DockerConfigOptions,
): Promise<CredentialsFound> {
  const failed = (reason: string) =>
    new DockerSaveError(
      "BAD_CREDENTIALS",
      `Cannot get credentials for ${registry}: ${reason}`,
    );
  if (!HELPER_NAME.test(name)) {
    throw failed(
      `the credential helper ${
        untrustedText(JSON.stringify(name))
      } (${where}) is not a helper name`,
    );
  }
  const program = `docker-credential-${name}`;
  const server = registryKey(registry) === DOCKER_HUB
    ? DOCKER_HUB_SERVER
    : registry;
  const outcome: ProgramOutcome = await (options.run ?? runProgram)(
    program,
    ["get"],
    // runProgram's defaults: 60 s, 1 MiB of output.
    { input: server, timeout: options.timeout },
  );
  if (outcome.kind === "unavailable") {
    return {
      note:
        `${program} (${where}) was not asked for credentials: ${outcome.reason}`,
    };
  }
  if (outcome.kind === "missing") {
    throw failed(`${program} (${where}) is not on PATH`);
  }
  if (outcome.status !== 0) {
    // docker-credential-helpers' answer for an unknown server.
    if (/credentials not found/i.test(outcome.stdout)) {
      return { note: `${program} (${where}) has none for ${server}` };
    }
    const said = (outcome.stdout.trim() || outcome.stderr.trim())
      .split("\n")[0];
    throw failed(
      `${program} get (${where}) ${
        outcome.killed ?? `exited with status ${outcome.status}`
      }${said ? `: ${untrustedText(said)}` : ""}`,
    );
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(outcome.stdout);
  } catch {
    answer = {};
  }
  if (
    typeof answer?.Username !== "string" || typeof answer.Secret !== "string"
  ) {
    throw failed(
      `${program} get (${where}) answered without a Username and Secret`,
    );
  }
  // "<token>" as the user name means the secret is an identity token.
  return {
    credentials: answer.Username === "<token>"
      ? { identityToken: answer.Secret }
      : { username: answer.Username, password: answer.Secret },
  };
}

function entryCredentials(entry: unknown): RegistryCredentials | undefined {
  if (!isObject(entry)) return undefined;
  let username = typeof entry.username === "string" ? entry.username : "";
  let password = typeof entry.password === "string" ? entry.password : "";
  if (typeof entry.auth === "string" && entry.auth !== "") {
    try {
      const decoded = new TextDecoder().decode(
        Uint8Array.from(atob(entry.auth), (c) => c.charCodeAt(0)),
      );
      const colon = decoded.indexOf(":");
      if (colon > 0) {
        username = decoded.slice(0, colon);
        password = decoded.slice(colon + 1);
      }
    } catch { /* not base64: the other fields */ }
  }
  if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") {
    return {
      username: username || undefined,
      identityToken: entry.identitytoken,
    };
  }
  return username !== "" ? { username, password } : undefined;
}

async function defaultDockerConfigPath(): Promise<string | undefined> {
  const process = await importNode<{ env?: Record<string, string> }>(
    "node:process",
  );
  const fromEnv = process?.env?.DOCKER_CONFIG;
  if (fromEnv) return `${fromEnv}/config.json`;
  const os = await importNode<typeof import("node:os")>("node:os");
  const home = os?.homedir?.();
  return home ? `${home}/.docker/config.json` : undefined;
}
