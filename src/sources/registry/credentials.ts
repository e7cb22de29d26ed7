/**
 * Credentials for registries, always bound to the registry host they are
 * for: `{ registry, username, password }`, a map keyed by registry host, or a
 * function of the host. A bare `{ username, password }` is refused: an edge
 * function that takes the image reference from a request would otherwise
 * hand them to any registry the request names.
 *
 * @module
 */

import { DOCKER_HUB, DOCKER_HUB_API } from "../../model/image_reference.ts";

/**
 * A user name and password (or personal access token), or an identity token
 * (an OAuth2 refresh token, as `docker login` stores for some registries).
 *
 * @example
 * ```ts
 * import type { RegistryCredentials } from "./credentials.ts";
 * const password: RegistryCredentials = { username: "ci", password: "ghp_…" };
 * const token: RegistryCredentials = { identityToken: "eyJ…" };
 * ```
 */
export interface RegistryCredentials {
  /** The user name (with `password`; optional with `identityToken`). */
  username?: string;
  /** The password or access token. */
  password?: string;
  /**
   * An identity token: exchanged at the token realm by the OAuth2
   * refresh-token grant.
   */
  identityToken?: string;
}

/**
 * Credentials and the registry host they are for.
 *
 * @example
 * ```ts
 * import type { RegistryHostCredentials } from "./credentials.ts";
 * const credentials: RegistryHostCredentials = {
 *   registry: "ghcr.io", username: "ci", password: "ghp_…",
 * };
 * ```
 */
export interface RegistryHostCredentials extends RegistryCredentials {
  /** `host[:port]` as in image references (`docker.io` for Docker Hub). */
  registry: string;
}

/**
 * Where credentials come from in `fromRegistry`'s options: one registry's,
 * a map keyed by registry host (`host[:port]`, Docker Hub as `docker.io`),
 * or a function of the registry host returning them (or `undefined`).
 *
 * @example
 * ```ts
 * import type { RegistryCredentialsOption } from "./credentials.ts";
 * const one: RegistryCredentialsOption = { registry: "ghcr.io", username: "ci", password: "…" };
 * const map: RegistryCredentialsOption = {
 *   "ghcr.io": { username: "ci", password: "…" },
 *   "registry.example:5000": { username: "bot", password: "…" },
 * };
 * const lookup: RegistryCredentialsOption = async (host) =>
 *   host === "ghcr.io" ? { username: "ci", password: "…" } : undefined;
 * ```
 */
export type RegistryCredentialsOption =
  | RegistryHostCredentials
  | Readonly<Record<string, RegistryCredentials>>
  | ((
    registry: string,
  ) =>
    | RegistryCredentials
    | undefined
    | Promise<RegistryCredentials | undefined>);

/**
 * A registry name in the form credentials are matched by: lowercase
 * `host[:port]`, no scheme or path (as docker's `ConvertToHostname`), and
 * every Docker Hub alias (`index.docker.io`, `registry-1.docker.io`,
 * `https://index.docker.io/v1/`) as `docker.io`.
 *
 * @example
 * ```ts
 * import { registryKey } from "./credentials.ts";
 * registryKey("https://index.docker.io/v1/"); // "docker.io"
 * registryKey("GHCR.io"); // "ghcr.io"
 * ```
 */
export function registryKey(name: string): string {
  const host = name.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/.*$/, "")
    .toLowerCase();
  return DOCKER_HUB_ALIASES.includes(host) ? DOCKER_HUB : host;
}

const DOCKER_HUB_ALIASES = [DOCKER_HUB, "index.docker.io", DOCKER_HUB_API];

/**
 * Checks the shape of a credentials option, throwing a `TypeError` that says
 * what is wrong: a bare `{ username, password }` (no registry), or
 * credentials without a user name and password or an identity token.
 *
 * @example
 * ```ts
 * import { assertCredentialsOption } from "./credentials.ts";
 * assertCredentialsOption({ registry: "ghcr.io", username: "ci", password: "…" });
 * ```
 */
export function assertCredentialsOption(
  option: unknown,
): asserts option is RegistryCredentialsOption | undefined {
  if (option === undefined || typeof option === "function") return;
  if (typeof option !== "object" || option === null || Array.isArray(option)) {
    throw new TypeError(
      "Cannot use options.credentials: give { registry, username, password }, a map keyed by registry host, or a function of the host",
    );
  }
  const record = option as Record<string, unknown>;
  if (typeof record.registry === "string") {
    assertCredentials(record, `options.credentials for ${record.registry}`);
    return;
  }
  if (
    ["username", "password", "identityToken"].some((key) =>
      typeof record[key] === "string"
    )
  ) {
    throw new TypeError(
      'Cannot use options.credentials: they name no registry, and would be sent to whatever registry a reference names; give { registry: "host[:port]", username, password }, a map keyed by registry host, or a function of the host',
    );
  }
  for (const [host, credentials] of Object.entries(record)) {
    assertCredentials(credentials, `options.credentials["${host}"]`);
  }
}

/**
 * The credentials an option gives for `registry` (as named in the
 * reference), or `undefined`. The option is assumed checked
 * (`assertCredentialsOption`); a function's answer is checked here.
 *
 * @example
 * ```ts
 * import { credentialsFor } from "./credentials.ts";
 * await credentialsFor({ "ghcr.io": { username: "ci", password: "…" } }, "ghcr.io");
 * // { username: "ci", password: "…" }
 * ```
 */
export async function credentialsFor(
  option: RegistryCredentialsOption | undefined,
  registry: string,
): Promise<RegistryCredentials | undefined> {
  if (option === undefined) return undefined;
  const key = registryKey(registry);
  if (typeof option === "function") {
    const found = await option(registry);
    if (found === undefined) return undefined;
    assertCredentials(found, `options.credentials("${registry}")`);
    return pick(found);
  }
  if (typeof option.registry === "string") {
    return registryKey(option.registry) === key
      ? pick(option as RegistryHostCredentials)
      : undefined;
  }
  for (
    const [host, credentials] of Object.entries(
      option as Record<string, RegistryCredentials>,
    )
  ) {
    if (registryKey(host) === key) return pick(credentials);
  }
  return undefined;
}

function assertCredentials(value: unknown, what: string): void {
  const c = value as RegistryCredentials | undefined;
  const ok = typeof c === "object" && c !== null &&
    (typeof c.identityToken === "string" ||
      (typeof c.username === "string" && typeof c.password === "string"));
  if (!ok) {
    throw new TypeError(
      `Cannot use ${what}: give username and password, or identityToken`,
    );
  }
}

// Only the credential fields (a `registry` field or extras stay behind).
function pick(c: RegistryCredentials): RegistryCredentials {
  return c.identityToken !== undefined
    ? { username: c.username, identityToken: c.identityToken }
    : { username: c.username, password: c.password };
}
