/**
 * The registry's HTTP transport, after go-containerregistry's `transport/`
 * (`retry.go`, `error.go`) and `remote/fetcher.go`: one request with its
 * redirects followed by hand (so `Authorization` never leaves the origin it
 * was meant for), the one retry loop (backoff on 408, 429, 5xx and network
 * errors, `Retry-After` honoured), reads bounded in size and time, and HTTP
 * errors mapped to `DockerSaveError`s.
 *
 * Authentication wraps this (`_registry_auth.ts`); resumable blob streams sit
 * beside it (`_registry_blob_stream.ts`).
 *
 * @module
 */

import {
  DockerSaveError,
  type DockerSaveErrorCode,
} from "../../model/errors.ts";
import { concatBytes } from "../../util/streams.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import { rateLimitReason, rateLimitUsedUp } from "./rate_limit.ts";
import {
  classifyNetworkError,
  describeNetworkFailure,
  type NetworkFailure,
} from "./network_error.ts";

/**
 * How the transport reaches a registry and retries.
 *
 * @example
 * ```ts
 * import type { TransportOptions } from "./transport.ts";
 * const options: TransportOptions = {
 *   fetch, allowHttp: false,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * };
 * ```
 */
export interface TransportOptions {
  /** The `fetch` to use. */
  fetch: typeof fetch;
  /**
   * Whether `http:` URLs may be fetched: only for a registry allowed
   * insecure. `https:` always may; no other scheme ever.
   */
  allowHttp: boolean;
  /** Retries after a first failed attempt. */
  attempts: number;
  /** First backoff delay (ms), doubled per retry. */
  delay: number;
  /** Longest backoff delay (ms), also the cap on `Retry-After`. */
  maxDelay: number;
  /**
   * Longest wait (ms) for response headers or for the next body chunk, and
   * for a body read whole.
   */
  timeout: number;
  /** Told before each retry: what failed, why, and how long we wait. */
  onRetry?: (notice: RetryNotice) => void;
}

/**
 * A retry about to happen, so a wait is never silent.
 *
 * @example
 * ```ts
 * import type { RetryNotice } from "./transport.ts";
 * const notice: RetryNotice = {
 *   what: 'manifest of "alpine"', reason: "status 503", retry: 1, retries: 5, wait: 500,
 * };
 * ```
 */
export interface RetryNotice {
  /** What is being fetched (`manifest of "alpine:3.20"`). */
  what: string;
  /** Why the last attempt failed. */
  reason: string;
  /** This retry's number, from 1. */
  retry: number;
  /** Retries allowed in all. */
  retries: number;
  /** Milliseconds until it starts. */
  wait: number;
}

/**
 * A failure worth retrying: a network error, a timeout, a broken body.
 *
 * @example
 * ```ts
 * import { TransportError } from "./transport.ts";
 * throw new TransportError("no data for 60000 ms");
 * ```
 */
export class TransportError extends Error {}

// A fetch that failed without a response: retried unless `failure.final`
// (a refused connection, an unknown host, TLS).
class NetworkError extends TransportError {
  constructor(host: string, readonly failure: NetworkFailure, cause: unknown) {
    // The runtime's message may quote a URL a redirect named: escaped.
    super(describeNetworkFailure(failure, host), { cause });
  }
}

// A response whose status is worth retrying (408, 429, 5xx), with the wait
// its `Retry-After` asks for.
class RetryableStatus extends TransportError {
  /**
   * @param response the response, body unread
   * @param wait milliseconds `Retry-After` asks for, if it does
   */
  constructor(readonly response: Response, readonly wait: number | undefined) {
    super(`status ${response.status}`);
  }

  /** A 429 with no request left in its window: retrying cannot help. */
  get final(): boolean {
    return this.response.status === 429 &&
      rateLimitUsedUp(this.response.headers);
  }
}

/**
 * One logical request across its attempts: each attempt aborts only itself
 * (a fresh controller), and `cancel()` stops the retries.
 *
 * @example
 * ```ts
 * import { Exchange } from "./transport.ts";
 * const exchange = new Exchange();
 * const signal = exchange.attempt();
 * exchange.cancel();
 * ```
 */
export class Exchange {
  /** The current attempt's controller. */
  controller: AbortController = new AbortController();
  /** Whether the caller gave up. */
  cancelled = false;

  /** Starts an attempt; its signal aborts only that attempt. */
  attempt(): AbortSignal {
    this.controller = new AbortController();
    return this.controller.signal;
  }

  /** Gives up: aborts the current attempt, and no other starts. */
  cancel(reason?: unknown): void {
    this.cancelled = true;
    this.controller.abort(reason);
  }
}

/**
 * What a request sends besides the URL.
 *
 * @example
 * ```ts
 * import type { SendInit } from "./transport.ts";
 * const init: SendInit = { headers: { accept: "application/json" } };
 * ```
 */
export interface SendInit {
  /** Headers (without `authorization`). */
  headers?: Record<string, string>;
  /**
   * The `Authorization` value, sent only to the first URL's origin and only
   * while no redirect has left it.
   */
  authorization?: string;
  /** `GET` unless given. */
  method?: "GET" | "POST";
  /** A form body, for `POST`. */
  body?: URLSearchParams;
}

/**
 * A response, and whether it came from the origin first asked (no redirect
 * left it).
 *
 * @example
 * ```ts
 * import type { Sent } from "./transport.ts";
 * const sent: Sent = { response: new Response(), sameOrigin: true };
 * ```
 */
export interface Sent {
  /** The final response (not a redirect). */
  response: Response;
  /** It came from the first URL's origin. */
  sameOrigin: boolean;
}

/**
 * What a request is for, so its errors name it and map its status.
 *
 * @example
 * ```ts
 * import type { Target } from "./transport.ts";
 * const target: Target = { what: "manifest of app:v1", notFound: "MANIFEST_NOT_FOUND" };
 * ```
 */
export interface Target {
  /** Names the thing in messages. */
  what: string;
  /** The code of a 404. */
  notFound: DockerSaveErrorCode;
}

// containerd reads at most this much of an error body (remotes/errors).
const ERROR_BODY_BYTES = 64_000;
// Registry error messages quoted in ours, at most, each and in all.
const ERROR_DETAIL_CHARS = 200;
const ERROR_DETAILS = 3;
const REDIRECTS = 10;

/**
 * The HTTP transport of one registry.
 *
 * @example
 * ```ts
 * import { Exchange, RegistryTransport } from "./transport.ts";
 * const transport = new RegistryTransport({
 *   fetch, allowHttp: false,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * });
 * const exchange = new Exchange();
 * const { response } = await transport.retry("the API root", exchange, () =>
 *   transport.send(new URL("https://ghcr.io/v2/"), {}, exchange)
 * );
 * ```
 */
export class RegistryTransport {
  /** The options it was made with. */
  readonly options: TransportOptions;

  /**
   * Creates a transport; nothing is sent until asked.
   *
   * @param options fetch, retries and timeout
   */
  constructor(options: TransportOptions) {
    this.options = options;
  }

  /**
   * One attempt: `fetch` with redirects followed by hand (at most 10),
   * headers awaited for at most `timeout`. A retryable status throws
   * `RetryableStatus`, a network error or timeout `TransportError` (both
   * for `retry()`); any other response is returned.
   */
  async send(url: URL, init: SendInit, exchange: Exchange): Promise<Sent> {
    if (exchange.cancelled) throw new TransportError("cancelled");
    this.checkUrl(url);
    const signal = exchange.attempt();
    const origin = url.origin;
    let method = init.method ?? "GET";
    let body = init.body;
    let stayed = true; // no redirect has left the first origin
    for (let hop = 0;; hop++) {
      const headers: Record<string, string> = { ...init.headers };
      if (init.authorization && stayed) {
        headers.authorization = init.authorization;
      }
      const response = await this.#fetch(url, { method, headers, body }, {
        signal,
        controller: exchange.controller,
      });
      const location = response.headers.get("location");
      if (!REDIRECT_STATUSES.includes(response.status) || location === null) {
        if (isRetryable(response.status)) {
          throw new RetryableStatus(
            response,
            retryAfter(response, this.options.maxDelay),
          );
        }
        return { response, sameOrigin: stayed && url.origin === origin };
      }
      await response.body?.cancel().catch(() => {});
      if (hop >= REDIRECTS) {
        throw new DockerSaveError(
          "REGISTRY_ERROR",
          `Cannot fetch ${
            untrustedText(url.href)
          }: more than ${REDIRECTS} redirects`,
        );
      }
      url = this.checkUrl(location, url);
      if (url.origin !== origin) stayed = false;
      // 303, and 301/302 after a POST, become a GET (as browsers do).
      if (
        response.status === 303 ||
        (method === "POST" && response.status < 303)
      ) {
        method = "GET";
        body = undefined;
      }
    }
  }

  /**
   * `url` (resolved against `base`) when it may be fetched: `https:`, or
   * `http:` where `allowHttp`. Anything else throws `DockerSaveError`
   * `BAD_URL` before a request is made: Deno's and Bun's `fetch` read
   * `file:` URLs, and a registry, a token realm or a redirect must not make
   * us read local files or drop TLS. (containers/image refuses non-http(s)
   * URLs the same way; insecure registries are its `http` exception.)
   */
  checkUrl(url: URL | string, base?: URL): URL {
    let parsed: URL;
    try {
      parsed = typeof url === "string" ? new URL(url, base) : url;
    } catch {
      throw new DockerSaveError(
        "BAD_URL",
        `Cannot fetch ${untrustedText(JSON.stringify(url))}: it is not a URL`,
      );
    }
    if (
      parsed.protocol === "https:" ||
      (parsed.protocol === "http:" && this.options.allowHttp)
    ) {
      return parsed;
    }
    throw new DockerSaveError(
      "BAD_URL",
      `Cannot fetch ${untrustedText(parsed.href)}: ${
        parsed.protocol === "http:"
          ? "plain http is allowed only for an insecure registry (options.insecure, --insecure-registry)"
          : "only http: and https: URLs are fetched"
      }`,
    );
  }

  /**
   * Whether `url` may be fetched (see `checkUrl`).
   *
   * @example
   * ```ts
   * import { RegistryTransport } from "./transport.ts";
   * const transport = new RegistryTransport({
   *   fetch, allowHttp: false,
   *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
   * });
   * transport.allows("file:///etc/passwd"); // false
   * ```
   */
  allows(url: string): boolean {
    try {
      this.checkUrl(url);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Runs `operation` until it succeeds, retrying a `TransportError` (network,
   * timeout, retryable status) after a backoff, `attempts` times at most.
   * Giving up throws `DockerSaveError`: the status's error, or
   * `REGISTRY_ERROR`. Any other error ends it at once.
   */
  async retry<T>(
    what: string,
    exchange: Exchange,
    operation: () => Promise<T>,
  ): Promise<T> {
    for (let failures = 0;; failures++) {
      try {
        return await operation();
      } catch (error) {
        if (!(error instanceof TransportError) || exchange.cancelled) {
          throw error;
        }
        if (error instanceof NetworkError && error.failure.final) {
          throw new DockerSaveError(
            "REGISTRY_ERROR",
            `Cannot fetch ${what}: ${error.message}`,
            { cause: error },
          );
        }
        if (
          failures >= this.options.attempts ||
          (error instanceof RetryableStatus && error.final)
        ) {
          throw await this.#gaveUp(what, error, exchange, failures);
        }
        let wait: number | undefined;
        if (error instanceof RetryableStatus) {
          wait = error.wait;
          await error.response.body?.cancel().catch(() => {});
        }
        wait ??= this.#backoff(failures + 1);
        this.options.onRetry?.({
          what,
          reason: error.message,
          retry: failures + 1,
          retries: this.options.attempts,
          wait,
        });
        await sleep(wait);
      }
    }
  }

  // The backoff (ms) before retry number `failures`, with jitter.
  #backoff(failures: number): number {
    const { delay, maxDelay } = this.options;
    const exponential = delay * 2 ** (failures - 1);
    return Math.min(maxDelay, exponential) * (0.5 + Math.random() / 2);
  }

  /**
   * `reader.read()`, or a `TransportError` (and the attempt aborted) after
   * `timeout` without data, or once past `deadline` (a `Date.now()` time).
   */
  async readChunk(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    exchange: Exchange,
    deadline = Infinity,
  ): Promise<ReadableStreamReadResult<Uint8Array>> {
    const ms = Math.max(
      0,
      Math.min(this.options.timeout, deadline - Date.now()),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const error = new TransportError(
              ms < this.options.timeout
                ? `not read in ${this.options.timeout} ms`
                : `no data for ${ms} ms`,
            );
            exchange.controller.abort(error);
            reject(error);
          }, ms);
        }),
      ]);
    } catch (error) {
      if (error instanceof DockerSaveError || error instanceof TransportError) {
        throw error;
      }
      throw new TransportError((error as Error)?.message ?? String(error), {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A whole (small) body, at most `limit` bytes: more throws
   * `DockerSaveError` `REGISTRY_ERROR`. The whole body is read within
   * `timeout` (a `TransportError` otherwise, to retry): a server that drips
   * a manifest, a config or a token one byte at a time cannot hold us, as
   * Go's `http.Client.Timeout` covers a body read whole.
   */
  async read(
    response: Response,
    limit: number,
    exchange: Exchange,
    what: string,
  ): Promise<Uint8Array> {
    if (!response.body) return new Uint8Array();
    const deadline = Date.now() + this.options.timeout;
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await this.readChunk(
          reader,
          exchange,
          deadline,
        );
        if (done) break;
        total += value.byteLength;
        if (total > limit) {
          throw new DockerSaveError(
            "REGISTRY_ERROR",
            `Cannot fetch ${what}: it is larger than ${limit} bytes`,
          );
        }
        chunks.push(value);
      }
    } catch (error) {
      exchange.controller.abort();
      await reader.cancel().catch(() => {});
      throw error;
    }
    return concatBytes(chunks);
  }

  /**
   * The `DockerSaveError` for a response that is not OK: 404 is
   * `target.notFound`, 401 and 403 `UNAUTHORIZED`, others `REGISTRY_ERROR`;
   * the registry's `errors[]` are quoted, escaped and cut short.
   * `failures` counts the attempts that failed before.
   */
  async statusError(
    response: Response,
    target: Target,
    exchange: Exchange,
    failures = 0,
  ): Promise<DockerSaveError> {
    const detail = errorDetail(
      await this.#sample(response, exchange).catch(() => new Uint8Array()),
    );
    const status = `status ${response.status}${detail ? `, ${detail}` : ""}`;
    let code: DockerSaveErrorCode = "REGISTRY_ERROR";
    let reason = `the registry answered ${status}`;
    if (response.status === 404) {
      code = target.notFound;
      reason = `not found (${status})`;
    } else if (response.status === 401 || response.status === 403) {
      code = "UNAUTHORIZED";
      reason = `access denied (${status})`;
    } else if (response.status === 429) {
      code = "RATE_LIMITED";
      reason = rateLimitReason(
        response.headers,
        failures > 0 ? `${status}, after ${failures + 1} attempts` : status,
      );
    } else if (failures > 0) {
      reason += ` after ${failures + 1} attempts`;
    }
    return new DockerSaveError(code, `Cannot fetch ${target.what}: ${reason}`);
  }

  // The first ERROR_BODY_BYTES of a body, read within `timeout`; the rest is
  // left unread.
  async #sample(response: Response, exchange: Exchange): Promise<Uint8Array> {
    if (!response.body) return new Uint8Array();
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    const deadline = Date.now() + this.options.timeout;
    try {
      while (total < ERROR_BODY_BYTES) {
        const { done, value } = await this.readChunk(
          reader,
          exchange,
          deadline,
        );
        if (done) break;
        const room = ERROR_BODY_BYTES - total;
        chunks.push(value.subarray(0, room));
        total += Math.min(room, value.byteLength);
      }
    } finally {
      exchange.controller.abort();
      await reader.cancel().catch(() => {});
    }
    return concatBytes(chunks);
  }

  async #fetch(
    url: URL,
    init: {
      method: string;
      headers: Record<string, string>;
      body?: URLSearchParams;
    },
    attempt: { signal: AbortSignal; controller: AbortController },
  ): Promise<Response> {
    const timer = setTimeout(
      () => attempt.controller.abort(new TransportError("timed out")),
      this.options.timeout,
    );
    try {
      return await this.options.fetch(url, {
        ...init,
        redirect: "manual",
        signal: attempt.signal,
      });
    } catch (error) {
      // A certificate or proxy refusal (network.ts): retrying cannot help.
      if (error instanceof DockerSaveError) throw error;
      // Our own abort (a timeout) keeps its reason; a network failure is
      // classified, final where retrying cannot help.
      if (error instanceof TransportError) {
        throw new TransportError(`${url.host}: ${error.message}`, {
          cause: error,
        });
      }
      throw new NetworkError(url.host, classifyNetworkError(error), error);
    } finally {
      clearTimeout(timer);
    }
  }

  async #gaveUp(
    what: string,
    error: TransportError,
    exchange: Exchange,
    failures: number,
  ): Promise<DockerSaveError> {
    if (error instanceof RetryableStatus) {
      return await this.statusError(
        error.response,
        { what, notFound: "REGISTRY_ERROR" },
        exchange,
        failures,
      );
    }
    return new DockerSaveError(
      "REGISTRY_ERROR",
      `Cannot fetch ${what}: ${error.message} (after ${failures + 1} attempts)`,
      { cause: error },
    );
  }
}

const REDIRECT_STATUSES = [301, 302, 303, 307, 308];

function isRetryable(status: number): boolean {
  return status === 408 || status === 429 ||
    (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

function retryAfter(response: Response, max: number): number | undefined {
  const header = response.headers.get("retry-after");
  if (header === null) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds)
    ? seconds * 1000
    : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(max, Math.max(0, ms)) : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// "CODE: message; …" from a registry's error body (distribution's
// `{"errors": [{"code", "message"}]}`), escaped and cut short: the text is
// the registry's, not ours.
function errorDetail(body: Uint8Array): string {
  let errors: unknown;
  try {
    errors = JSON.parse(new TextDecoder().decode(body))?.errors;
  } catch {
    return "";
  }
  if (!Array.isArray(errors)) return "";
  return errors.slice(0, ERROR_DETAILS).map((e) =>
    [e?.code, e?.message].filter((s) => typeof s === "string")
      .map((s) => untrustedText(s, ERROR_DETAIL_CHARS)).join(": ")
  ).filter(Boolean).join("; ") +
    (errors.length > ERROR_DETAILS ? `; … (${errors.length} errors)` : "");
}
