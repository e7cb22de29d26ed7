/**
 * Registry authentication, wrapping the transport, after
 * go-containerregistry's `transport/bearer.go` and `basic.go`: the
 * `WWW-Authenticate` challenge of a 401 decides between Basic credentials and
 * a Bearer token from the challenge's realm (service, scope); tokens are kept
 * per scope until they expire or are refused, then fetched again. An
 * identity token is exchanged by the OAuth2 refresh-token grant (a `POST` to
 * the realm, as the distribution token spec says), falling back to the `GET`
 * flow where the server refuses it (containerd's rule: 400, 401, 404, 405).
 * Credentials are asked for once, only when the registry wants them.
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import type { CredentialsFound } from "./docker_config.ts";
import type { RegistryCredentials } from "./credentials.ts";
import { Exchange, type RegistryTransport } from "./transport.ts";

/**
 * One challenge of a `WWW-Authenticate` header.
 *
 * @example
 * ```ts
 * import type { Challenge } from "./auth.ts";
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
 * import { parseChallenges } from "./auth.ts";
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
 * import type { AuthOptions } from "./auth.ts";
 * declare const transport: import("./transport.ts").RegistryTransport;
 * const options: AuthOptions = {
 *   registry: "ghcr.io", transport, credentials: async () => ({}),
 * };
 * ```
 */
export interface AuthOptions {
  /** The registry as named (`docker.io`, `localhost:5000`), for messages. */
  registry: string;
  /**
   * Finds the credentials for this registry (and only this one), asked once,
   * when the registry wants them.
   */
  credentials: () => Promise<CredentialsFound>;
  /** The transport requests go through. */
  transport: RegistryTransport;
}

/**
 * The auth state of one registry, wrapping its transport: the challenge
 * learnt from its first 401, and Bearer tokens by scope. Credentials go only
 * to the registry's own origin (the transport drops them on a redirect that
 * leaves it) and to the token realm the registry names.
 *
 * @example
 * ```ts
 * import { RegistryAuth } from "./auth.ts";
 * import { Exchange, RegistryTransport } from "./transport.ts";
 * const transport = new RegistryTransport({
 *   fetch, allowHttp: false,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * });
 * const auth = new RegistryAuth({
 *   registry: "ghcr.io", transport, credentials: async () => ({}),
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
  // Token requests under way, by scope: layers fetched side by side share one.
  #fetching = new Map<string, Promise<Token>>();
  #found: Promise<CredentialsFound> | undefined;

  /**
   * Creates the state of one registry, knowing no challenge yet.
   *
   * @param options the registry, its transport and credentials
   */
  constructor(options: AuthOptions) {
    this.#options = options;
  }

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

  #find(): Promise<CredentialsFound> {
    return this.#found ??= this.#options.credentials();
  }

  // The Authorization for `scope` once the challenge is known: Basic
  // credentials, or a Bearer token for the scope (reused until it nears
  // expiry). undefined before any 401.
  async #header(scope: string): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const { credentials } = await this.#find();
      return credentials?.password !== undefined
        ? basic(credentials.username ?? "", credentials.password)
        : undefined;
    }
    const cached = this.#tokens.get(scope);
    if (cached && Date.now() < cached.refreshAt) {
      return `Bearer ${cached.value}`;
    }
    let fetching = this.#fetching.get(scope);
    if (!fetching) {
      fetching = this.#fetchToken(challenge, scope).finally(() =>
        this.#fetching.delete(scope)
      );
      this.#fetching.set(scope, fetching);
    }
    const token = await fetching;
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
    const { credentials } = await this.#find();
    if (challenge.scheme === "basic") {
      if (credentials?.password === undefined) {
        throw denied(await this.#needCredentials(credentials));
      }
      if (sent?.startsWith("Basic ")) {
        throw denied(`${registry} refused ${whose(credentials)}`);
      }
      return;
    }
    if (sent?.startsWith("Bearer ")) {
      this.#tokens.delete(scope);
      if (challenge.params.error === "insufficient_scope") {
        throw denied(
          credentials
            ? `${
              whose(credentials)
            } may not pull it from ${registry}, or it does not exist`
            : `${registry} does not let anonymous users pull it, or it does not exist; ${await this
              .#needCredentials(credentials)}`,
        );
      }
    }
  }

  async #needCredentials(
    credentials: RegistryCredentials | undefined,
  ): Promise<string> {
    const { note } = await this.#find();
    return `${this.#options.registry} requires credentials${
      credentials?.identityToken !== undefined
        ? " (an identity token works only with token auth)"
        : " (options.credentials, --creds, or a docker config file's auths or credential helpers)"
    }${note ? `; ${note}` : ""}`;
  }

  async #fetchToken(challenge: Challenge, scope: string): Promise<Token> {
    const registry = this.#options.registry;
    const realm = challenge.params.realm;
    const what = `a token for ${scope} from ${registry}`;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new DockerSaveError(
        "UNAUTHORIZED",
        `Cannot get ${what}: the challenge's realm ${
          untrustedText(JSON.stringify(realm) ?? "undefined")
        } is not a URL`,
      );
    }
    const service = challenge.params.service;
    // The realm is the registry's own choice, so it gets the registry's
    // credentials (as docker, containerd and go-containerregistry do); the
    // transport refuses a realm over http: unless the registry is insecure.
    const { credentials } = await this.#find();
    if (credentials?.identityToken !== undefined) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credentials.identityToken,
        client_id: "docker-save",
        scope,
      });
      if (service) form.set("service", service);
      const answer = await this.#tokenRequest(url, what, {
        method: "POST",
        body: form,
      });
      if (![400, 401, 404, 405].includes(answer.status)) {
        return tokenFrom(answer, what, url, credentials);
      }
      // The server refuses the grant: the GET flow, the token as password.
    }
    const get = new URL(url);
    if (service) get.searchParams.set("service", service);
    get.searchParams.append("scope", scope);
    const secret = credentials?.identityToken ?? credentials?.password;
    const answer = await this.#tokenRequest(get, what, {
      authorization: secret === undefined
        ? undefined
        : basic(credentials?.username ?? "", secret),
    });
    if (answer.status === 401 || answer.status === 403) {
      throw new DockerSaveError(
        "UNAUTHORIZED",
        `Cannot get ${what}: ${get.host} refused ${
          credentials ? whose(credentials) : "anonymous access"
        } (status ${answer.status})`,
      );
    }
    return tokenFrom(answer, what, get, credentials);
  }

  // One token request in the retry loop: its status and (capped) body.
  #tokenRequest(
    url: URL,
    what: string,
    init: { method?: "POST"; body?: URLSearchParams; authorization?: string },
  ): Promise<TokenAnswer> {
    const transport = this.#options.transport;
    const exchange = new Exchange();
    const started = Date.now();
    return transport.retry(what, exchange, async () => {
      const { response } = await transport.send(url, {
        ...init,
        headers: { accept: "application/json" },
      }, exchange);
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        return { status: response.status, text: "", started };
      }
      const bytes = await transport.read(
        response,
        MAX_TOKEN_BYTES,
        exchange,
        what,
      );
      return {
        status: response.status,
        text: new TextDecoder().decode(bytes),
        started,
      };
    });
  }
}

interface TokenAnswer {
  status: number;
  text: string;
  started: number;
}

// A token from a token server's answer ("token" or OAuth2's
// "access_token"), or UNAUTHORIZED.
function tokenFrom(
  answer: TokenAnswer,
  what: string,
  url: URL,
  credentials: RegistryCredentials | undefined,
): Token {
  let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(answer.text);
  } catch {
    body = {};
  }
  const value = typeof body?.token === "string" && body.token !== ""
    ? body.token
    : typeof body?.access_token === "string" && body.access_token !== ""
    ? body.access_token
    : undefined;
  if (answer.status < 200 || answer.status > 299 || !value) {
    throw new DockerSaveError(
      "UNAUTHORIZED",
      `Cannot get ${what}: ${url.host} answered status ${answer.status} without a token${
        credentials ? ` for ${whose(credentials)}` : ""
      }`,
    );
  }
  // The spec's default lifetime is 60 s; refresh a quarter early (≤ 30 s).
  const seconds = typeof body.expires_in === "number" && body.expires_in > 0
    ? body.expires_in
    : 60;
  const lifetime = seconds * 1000;
  return {
    value,
    refreshAt: answer.started + lifetime - Math.min(30_000, lifetime / 4),
  };
}

// Names credentials in messages without their secret.
function whose(credentials: RegistryCredentials): string {
  const user = credentials.username
    ? `user "${untrustedText(credentials.username, 100)}"`
    : "";
  if (credentials.identityToken !== undefined) {
    return user ? `the identity token of ${user}` : "the identity token";
  }
  return `the credentials of ${user || "an empty user name"}`;
}

function basic(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}
