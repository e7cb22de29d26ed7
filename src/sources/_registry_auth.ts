/**
 * Registry authentication, wrapping the transport, after
 * go-containerregistry's `transport/bearer.go` and `basic.go`: the
 * `WWW-Authenticate` challenge of a 401 decides between Basic credentials and
 * a Bearer token from the challenge's realm (service, scope); tokens are kept
 * per scope until they expire or are refused, then fetched again. Credentials
 * come from an option or from the docker config file's `auths`.
 *
 * @module
 */

import { DockerSaveError } from "../errors.ts";
import { importNode } from "../runtime/_import.ts";
import { DOCKER_HUB, DOCKER_HUB_API } from "./_reference.ts";
import { Exchange, type RegistryTransport } from "./_registry_transport.ts";

/**
 * A user name and password (or personal access token).
 *
 * @example
 * ```ts
 * import type { RegistryCredentials } from "./_registry_auth.ts";
 * const credentials: RegistryCredentials = { username: "ci", password: "ghp_…" };
 * ```
 */
export interface RegistryCredentials {
  /** The user name. */
  username: string;
  /** The password or access token. */
  password: string;
}

/**
 * One challenge of a `WWW-Authenticate` header.
 *
 * @example
 * ```ts
 * import type { Challenge } from "./_registry_auth.ts";
 * const basic: Challenge = { scheme: "basic", params: { realm: "registry" } };
 * ```
 */
export interface Challenge {
  /** The scheme, lowercased: `basic` or `bearer`. */
  scheme: string;
  /** The parameters (`realm`, `service`, `scope`, `error`), names lowercased. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header into its challenges.
 *
 * @example
 * ```ts
 * import { parseChallenges } from "./_registry_auth.ts";
 * parseChallenges('Bearer realm="https://auth.example.com/token",service="r"');
 * // [{ scheme: "bearer", params: { realm: "https://auth.example.com/token", service: "r" } }]
 * ```
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const token = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/y;
  let i = 0;
  while (i < header.length) {
    token.lastIndex = i;
    const scheme = token.exec(header);
    if (!scheme) {
      i++;
      continue;
    }
    i = token.lastIndex;
    const challenge: Challenge = {
      scheme: scheme[1].toLowerCase(),
      params: {},
    };
    challenges.push(challenge);
    // Parameters: name=value or name="quoted", comma separated, until a
    // token that is not followed by "=" starts the next challenge.
    for (;;) {
      token.lastIndex = i;
      const name = token.exec(header);
      if (!name || header[token.lastIndex] !== "=") break;
      i = token.lastIndex + 1;
      let value = "";
      if (header[i] === '"') {
        for (i++; i < header.length && header[i] !== '"'; i++) {
          if (header[i] === "\\") i++;
          value += header[i] ?? "";
        }
        i++;
      } else {
        const end = header.slice(i).search(/[,\s]/);
        value = end < 0 ? header.slice(i) : header.slice(i, i + end);
        i += value.length;
      }
      challenge.params[name[1].toLowerCase()] = value;
      const comma = /\s*,\s*/y;
      comma.lastIndex = i;
      if (comma.exec(header)) i = comma.lastIndex;
    }
  }
  return challenges;
}

/**
 * The credentials for `registry` in a docker config file's `auths` (the
 * base64 `auth` field, or `username`/`password`), or `undefined` when the
 * file, the entry or file access is missing. `path` defaults to
 * `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Credential
 * helpers (`credsStore`, `credHelpers`) and `identitytoken` are not used.
 *
 * @example
 * ```ts
 * import { dockerConfigCredentials } from "./_registry_auth.ts";
 * const credentials = await dockerConfigCredentials("ghcr.io");
 * ```
 */
export async function dockerConfigCredentials(
  registry: string,
  path?: string,
): Promise<RegistryCredentials | undefined> {
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs) return undefined;
  let text: string;
  try {
    path ??= await defaultDockerConfigPath();
    if (path === undefined) return undefined;
    text = await fs.readFile(path, "utf8");
  } catch {
    return undefined;
  }
  let auths: Record<string, unknown>;
  try {
    auths = JSON.parse(text)?.auths ?? {};
  } catch {
    return undefined;
  }
  const wanted = registry === DOCKER_HUB ? DOCKER_HUB_NAMES : [registry];
  for (const [key, entry] of Object.entries(auths)) {
    if (!wanted.includes(configHost(key))) continue;
    const credentials = entryCredentials(entry);
    if (credentials) return credentials;
  }
  return undefined;
}

const DOCKER_HUB_NAMES = [DOCKER_HUB, "index.docker.io", DOCKER_HUB_API];

// docker's ConvertToHostname: "https://index.docker.io/v1/" -> host part.
function configHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "").toLowerCase();
}

function entryCredentials(entry: unknown): RegistryCredentials | undefined {
  const e = entry as { auth?: unknown; username?: unknown; password?: unknown };
  if (typeof e?.auth === "string" && e.auth !== "") {
    try {
      const decoded = new TextDecoder().decode(
        Uint8Array.from(atob(e.auth), (c) => c.charCodeAt(0)),
      );
      const colon = decoded.indexOf(":");
      if (colon > 0) {
        return {
          username: decoded.slice(0, colon),
          password: decoded.slice(colon + 1),
        };
      }
    } catch { /* not base64: ignore the entry */ }
  }
  if (typeof e?.username === "string" && typeof e?.password === "string") {
    return { username: e.username, password: e.password };
  }
  return undefined;
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

// containers/image's MaxAuthTokenBodySize: "greatly sufficient".
const MAX_TOKEN_BYTES = 1024 * 1024;

interface Token {
  value: string;
  refreshAt: number;
}

/**
 * How `RegistryAuth` reaches one registry.
 *
 * @example
 * ```ts
 * import type { AuthOptions } from "./_registry_auth.ts";
 * declare const transport: import("./_registry_transport.ts").RegistryTransport;
 * const options: AuthOptions = {
 *   registry: "ghcr.io", transport, credentials: async () => undefined,
 * };
 * ```
 */
export interface AuthOptions {
  /** The registry as named (`docker.io`, `localhost:5000`), for messages. */
  registry: string;
  /** Resolves the credentials, asked once, when the registry wants them. */
  credentials: () => Promise<RegistryCredentials | undefined>;
  /** The transport requests go through. */
  transport: RegistryTransport;
}

/**
 * The auth state of one registry, wrapping its transport: the challenge
 * learnt from its first 401, and Bearer tokens by scope.
 *
 * @example
 * ```ts
 * import { RegistryAuth } from "./_registry_auth.ts";
 * import { Exchange, RegistryTransport } from "./_registry_transport.ts";
 * const transport = new RegistryTransport({
 *   fetch, allowHttp: false,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * });
 * const auth = new RegistryAuth({
 *   registry: "ghcr.io", transport, credentials: async () => undefined,
 * });
 * const response = await auth.send(
 *   new URL("https://ghcr.io/v2/org/app/manifests/1.2"), {},
 *   "repository:org/app:pull", new Exchange(), "org/app:1.2",
 * );
 * ```
 */
export class RegistryAuth {
  #options: AuthOptions;
  #challenge: Challenge | undefined;
  #tokens = new Map<string, Token>();
  #resolved: Promise<RegistryCredentials | undefined> | undefined;

  /**
   * Creates the state of one registry, knowing no challenge yet.
   *
   * @param options the registry, its transport and credentials
   */
  constructor(options: AuthOptions) {
    this.#options = options;
  }

  /** How many token requests were made (for tests and progress). */
  tokenRequests = 0;

  /**
   * One attempt at a registry URL needing `scope`, authorised: the
   * `Authorization` the registry's challenge asks for, and after a 401 from
   * the registry itself, the challenge learnt and the request sent again
   * (twice at most). Resolves to the final response, whatever its status;
   * throws `DockerSaveError` `UNAUTHORIZED` when credentials cannot help,
   * and the transport's errors.
   */
  async send(
    url: URL,
    headers: Record<string, string>,
    scope: string,
    exchange: Exchange,
    what: string,
  ): Promise<Response> {
    const transport = this.#options.transport;
    for (let challenges = 0;; challenges++) {
      const authorization = await this.#header(scope);
      const { response, sameOrigin } = await transport.send(
        url,
        { headers, authorization },
        exchange,
      );
      if (response.status !== 401 || !sameOrigin || challenges >= 2) {
        return response;
      }
      await response.body?.cancel().catch(() => {});
      await this.#unauthorized(response, scope, authorization, what);
    }
  }

  #getCredentials(): Promise<RegistryCredentials | undefined> {
    return this.#resolved ??= this.#options.credentials();
  }

  // The Authorization for `scope` once the challenge is known: Basic
  // credentials, or a Bearer token for the scope (reused until it nears
  // expiry). undefined before any 401.
  async #header(scope: string): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const credentials = await this.#getCredentials();
      return credentials ? basic(credentials) : undefined;
    }
    const cached = this.#tokens.get(scope);
    if (cached && Date.now() < cached.refreshAt) {
      return `Bearer ${cached.value}`;
    }
    const token = await this.#fetchToken(challenge, scope);
    this.#tokens.set(scope, token);
    return `Bearer ${token.value}`;
  }

  // Learns from a 401 answered to a request for `scope` that carried `sent`
  // (or no) Authorization. Returns when a retry may succeed; throws
  // UNAUTHORIZED when it cannot.
  async #unauthorized(
    response: Response,
    scope: string,
    sent: string | undefined,
    what: string,
  ): Promise<void> {
    const registry = this.#options.registry;
    const header = response.headers.get("www-authenticate") ?? "";
    const challenge = parseChallenges(header).find((c) =>
      c.scheme === "bearer" || c.scheme === "basic"
    );
    const denied = (reason: string) =>
      new DockerSaveError("UNAUTHORIZED", `Cannot pull ${what}: ${reason}`);
    if (!challenge) {
      throw denied(
        `${registry} answered 401 without a Basic or Bearer challenge`,
      );
    }
    this.#challenge = challenge;
    const credentials = await this.#getCredentials();
    if (challenge.scheme === "basic") {
      if (!credentials) throw denied(this.#needCredentials());
      if (sent?.startsWith("Basic ")) {
        throw denied(
          `${registry} refused the credentials of user "${credentials.username}"`,
        );
      }
      return;
    }
    if (sent?.startsWith("Bearer ")) {
      this.#tokens.delete(scope);
      if (challenge.params.error === "insufficient_scope") {
        throw denied(
          credentials
            ? `user "${credentials.username}" may not pull it from ${registry}, or it does not exist`
            : `${registry} does not let anonymous users pull it, or it does not exist; ${this.#needCredentials()}`,
        );
      }
    }
  }

  #needCredentials(): string {
    return `${this.#options.registry} requires credentials (options.credentials, --creds USER:PASS, or auths in ~/.docker/config.json)`;
  }

  async #fetchToken(challenge: Challenge, scope: string): Promise<Token> {
    const { registry, transport } = this.#options;
    const realm = challenge.params.realm;
    const what = `a token for ${scope} from ${registry}`;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new DockerSaveError(
        "UNAUTHORIZED",
        `Cannot get ${what}: the challenge's realm ${
          JSON.stringify(realm)
        } is not a URL`,
      );
    }
    if (challenge.params.service) {
      url.searchParams.set("service", challenge.params.service);
    }
    url.searchParams.append("scope", scope);
    // The realm is the registry's own choice, so it gets the registry's
    // credentials (as docker, containerd and go-containerregistry do); the
    // transport refuses a realm over http: unless the registry is insecure.
    const credentials = await this.#getCredentials();
    const authorization = credentials ? basic(credentials) : undefined;
    this.tokenRequests++;
    const started = Date.now();
    const exchange = new Exchange();
    const { status, text } = await transport.retry(what, exchange, async () => {
      const { response } = await transport.send(url, {
        headers: { accept: "application/json" },
        authorization,
      }, exchange);
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel().catch(() => {});
        throw new DockerSaveError(
          "UNAUTHORIZED",
          `Cannot get ${what}: ${url.host} refused ${
            credentials
              ? `the credentials of user "${credentials.username}"`
              : "anonymous access"
          } (status ${response.status})`,
        );
      }
      const bytes = await transport.read(
        response,
        MAX_TOKEN_BYTES,
        exchange,
        what,
        { whole: true },
      );
      return {
        status: response.status,
        text: new TextDecoder().decode(bytes),
      };
    });
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text);
    } catch {
      body = {};
    }
    const value = typeof body.token === "string"
      ? body.token
      : typeof body.access_token === "string"
      ? body.access_token
      : undefined;
    if (status < 200 || status > 299 || !value) {
      throw new DockerSaveError(
        "UNAUTHORIZED",
        `Cannot get ${what}: ${url.host} answered status ${status} without a token`,
      );
    }
    // The spec's default lifetime is 60 s; refresh a quarter early (≤ 30 s).
    const seconds = typeof body.expires_in === "number" && body.expires_in > 0
      ? body.expires_in
      : 60;
    const lifetime = seconds * 1000;
    return {
      value,
      refreshAt: started + lifetime - Math.min(30_000, lifetime / 4),
    };
  }
}

function basic({ username, password }: RegistryCredentials): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}
