/**
 * The registry HTTP client, after go-containerregistry's `remote/fetcher.go`
 * and `transport/`: `fetch` only, redirects followed by hand (so
 * `Authorization` never crosses to another host), retries with backoff on
 * 429, 5xx and network errors, and blob streams that resume with `Range`
 * from the byte reached when a transfer breaks.
 *
 * Nothing here checks digests of blobs: `save()` does, while streaming.
 *
 * @module
 */

import { DockerSaveError, type DockerSaveErrorCode } from "../errors.ts";
import type { Descriptor } from "../image.ts";
import { MEDIA_TYPES } from "../image.ts";
import { RegistryAuth, type RegistryCredentials } from "./_registry_auth.ts";

/**
 * Every manifest type we read, for `Accept`.
 *
 * @example
 * ```ts
 * import { MANIFEST_ACCEPT } from "./_registry_client.ts";
 * await fetch("https://ghcr.io/v2/org/app/manifests/1.2", {
 *   headers: { accept: MANIFEST_ACCEPT },
 * });
 * ```
 */
export const MANIFEST_ACCEPT: string = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(", ");

/**
 * Manifests larger than this are refused (distribution's own limit).
 *
 * @example
 * ```ts
 * import { MAX_MANIFEST_BYTES } from "./_registry_client.ts";
 * MAX_MANIFEST_BYTES; // 4194304
 * ```
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * How one registry is reached.
 *
 * @example
 * ```ts
 * import type { ClientConfig } from "./_registry_client.ts";
 * const config: ClientConfig = {
 *   registry: "docker.io", host: "registry-1.docker.io", secure: true,
 *   fetch, credentials: async () => undefined,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * };
 * ```
 */
export interface ClientConfig {
  /** The registry as named (`docker.io`, `localhost:5000`), for messages. */
  registry: string;
  /** `host[:port]` API requests go to. */
  host: string;
  /** HTTPS (else plain HTTP). */
  secure: boolean;
  /** The `fetch` to use. */
  fetch: typeof fetch;
  /** Resolves the credentials, asked once when the registry wants them. */
  credentials: () => Promise<RegistryCredentials | undefined>;
  /** Retries after a first failed attempt. */
  attempts: number;
  /** First backoff delay (ms), doubled per retry. */
  delay: number;
  /** Longest backoff delay (ms), also the cap on `Retry-After`. */
  maxDelay: number;
  /** Longest wait (ms) for response headers or for the next body chunk. */
  timeout: number;
}

/** What a request is for, so errors name it and map its status. */
interface Target {
  /** `manifest` (404: MANIFEST_NOT_FOUND) or `blob` (404: BLOB_NOT_FOUND). */
  kind: "manifest" | "blob";
  /** Names the thing in messages. */
  what: string;
  /** The token scope; `undefined` for URLs outside the registry. */
  scope?: string;
}

// Configs are read whole; larger ones are refused rather than allocated.
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/** A fetch that failed before an HTTP status: retried. */
class TransportError extends Error {}

/**
 * The abort controller of a request's current attempt (each attempt gets a
 * fresh one: a timed-out attempt aborts only itself), and whether the caller
 * gave up.
 */
interface Attempt {
  controller?: AbortController;
  cancelled?: boolean;
}

/**
 * One registry's client: auth state, retries, redirects, resumable blobs.
 *
 * @example
 * ```ts
 * import { RegistryClient } from "./_registry_client.ts";
 * const client = new RegistryClient({
 *   registry: "localhost:5000", host: "localhost:5000", secure: false,
 *   fetch, credentials: async () => undefined,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * });
 * const { bytes } = await client.manifest("team/app", "v1", "localhost:5000/team/app:v1");
 * ```
 */
export class RegistryClient {
  /** The registry's API root, `http[s]://host`. */
  readonly base: URL;
  /** The auth state. */
  readonly auth: RegistryAuth;
  #config: ClientConfig;

  /**
   * Creates a client; nothing is sent until a method is called.
   *
   * @param config how to reach the registry
   */
  constructor(config: ClientConfig) {
    this.#config = config;
    this.base = new URL(`${config.secure ? "https" : "http"}://${config.host}`);
    this.auth = new RegistryAuth(
      config.registry,
      config.credentials,
      (url, headers) =>
        this.#request(
          url,
          headers,
          {
            kind: "blob",
            what: `a token from ${url.host}`,
          },
          {},
          { noStatusError: true },
        ),
      config.secure,
    );
  }

  /**
   * A manifest's exact bytes, its media type (from the body, else
   * `Content-Type`) and the `Docker-Content-Digest` header, if any.
   */
  async manifest(
    repository: string,
    reference: string,
    what: string,
  ): Promise<{ bytes: Uint8Array; mediaType?: string; digest?: string }> {
    const url = new URL(`/v2/${repository}/manifests/${reference}`, this.base);
    const target: Target = { kind: "manifest", what, scope: pull(repository) };
    for (let failures = 0;; failures++) {
      const attempt: Attempt = {};
      const response = await this.#request(
        url,
        { accept: MANIFEST_ACCEPT },
        target,
        attempt,
      );
      try {
        const bytes = await readLimited(
          response,
          MAX_MANIFEST_BYTES,
          this.#config.timeout,
          attempt.controller!,
          what,
        );
        let mediaType: unknown;
        try {
          mediaType = JSON.parse(new TextDecoder().decode(bytes))?.mediaType;
        } catch { /* parseManifest reports it */ }
        return {
          bytes,
          mediaType: typeof mediaType === "string"
            ? mediaType
            : response.headers.get("content-type")?.split(";")[0].trim(),
          digest: response.headers.get("docker-content-digest") ?? undefined,
        };
      } catch (error) {
        if (!(error instanceof TransportError)) throw error;
        if (failures >= this.#config.attempts) {
          throw this.#gaveUp(what, error);
        }
        await sleep(backoff(this.#config, failures + 1));
      }
    }
  }

  /**
   * A small blob (a config) read whole, resuming if interrupted; more bytes
   * than its descriptor's size are refused (`SIZE_MISMATCH`).
   */
  async blobBytes(
    repository: string,
    descriptor: Descriptor,
    what: string,
  ): Promise<Uint8Array> {
    if (descriptor.size > MAX_CONFIG_BYTES) {
      throw new DockerSaveError(
        "BAD_MANIFEST",
        `Cannot fetch ${what}: its descriptor says ${descriptor.size} bytes, more than the ${MAX_CONFIG_BYTES} allowed`,
      );
    }
    const reader = this.openBlob(repository, descriptor, what).getReader();
    const bytes = new Uint8Array(descriptor.size);
    let at = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (at + value.byteLength > bytes.byteLength) {
        await reader.cancel().catch(() => {});
        throw new DockerSaveError(
          "SIZE_MISMATCH",
          `Cannot verify ${what}: it has more than ${descriptor.size} bytes`,
        );
      }
      bytes.set(value, at);
      at += value.byteLength;
    }
    return bytes.subarray(0, at);
  }

  /**
   * A blob as a pull-based stream of exactly the bytes the registry serves,
   * from byte `start` (a `Range` request); an interrupted transfer resumes
   * with `Range: bytes=N-`, or restarts and skips N bytes when the registry
   * ignores `Range`.
   */
  openBlob(
    repository: string,
    descriptor: Descriptor,
    what: string,
    start = 0,
  ): ReadableStream<Uint8Array> {
    const url = new URL(
      `/v2/${repository}/blobs/${descriptor.digest}`,
      this.base,
    );
    const target: Target = { kind: "blob", what, scope: pull(repository) };
    return this.#resumable(
      (headers, attempt) => this.#request(url, headers, target, attempt),
      descriptor.size,
      what,
      start,
    );
  }

  /**
   * A foreign layer from its `urls`, tried in order, sent no credentials;
   * resumed like `openBlob`.
   */
  openUrls(
    urls: readonly string[],
    descriptor: Descriptor,
    what: string,
  ): ReadableStream<Uint8Array> {
    return this.#resumable(
      async (headers, attempt) => {
        let last: unknown;
        for (const url of urls) {
          try {
            return await this.#request(new URL(url), headers, {
              kind: "blob",
              what: `${what} from ${url}`,
            }, attempt);
          } catch (error) {
            last = error;
          }
        }
        throw last;
      },
      descriptor.size,
      what,
    );
  }

  /**
   * The last `length` bytes of a blob by a closed `Range` request, or
   * `undefined` when the registry ignores `Range` or answers otherwise.
   */
  async blobTail(
    repository: string,
    descriptor: Descriptor,
    length: number,
    what: string,
  ): Promise<Uint8Array | undefined> {
    const { size } = descriptor;
    if (size < length) return undefined;
    const url = new URL(
      `/v2/${repository}/blobs/${descriptor.digest}`,
      this.base,
    );
    const attempt: Attempt = {};
    const response = await this.#request(
      url,
      {
        range: `bytes=${size - length}-${size - 1}`,
      },
      { kind: "blob", what, scope: pull(repository) },
      attempt,
    );
    const controller = attempt.controller!;
    const range = parseContentRange(response.headers.get("content-range"));
    if (
      response.status !== 206 || range?.start !== size - length ||
      (range.total !== undefined && range.total !== size)
    ) {
      controller.abort();
      await response.body?.cancel().catch(() => {});
      return undefined;
    }
    try {
      const bytes = await readLimited(
        response,
        length,
        this.#config.timeout,
        controller,
        what,
      );
      return bytes.byteLength === length ? bytes : undefined;
    } catch (error) {
      if (error instanceof TransportError) return undefined;
      throw error;
    }
  }

  // One request: auth (registry URLs), manual redirects, retries on 429/5xx
  // and network errors. Resolves to a 2xx response; other statuses throw a
  // DockerSaveError (unless noStatusError, for token realms).
  async #request(
    url: URL,
    headers: Record<string, string>,
    target: Target,
    attempt: Attempt,
    options: { noStatusError?: boolean } = {},
  ): Promise<Response> {
    const config = this.#config;
    let authRetries = 0;
    for (let failures = 0;;) {
      const authorization = target.scope === undefined
        ? undefined
        : await this.auth.header(target.scope);
      if (attempt.cancelled) throw new TransportError("cancelled");
      const controller = attempt.controller = new AbortController();
      let response: Response;
      let sameHost: boolean;
      try {
        ({ response, sameHost } = await this.#follow(
          url,
          headers,
          authorization,
          controller,
        ));
      } catch (error) {
        if (!(error instanceof TransportError) || attempt.cancelled) {
          throw error;
        }
        if (failures >= config.attempts) throw this.#gaveUp(target.what, error);
        failures++;
        await sleep(backoff(config, failures));
        continue;
      }
      if (
        response.status === 401 && target.scope !== undefined && sameHost &&
        authRetries < 2
      ) {
        authRetries++;
        await response.body?.cancel().catch(() => {});
        await this.auth.unauthorized(
          response,
          target.scope,
          authorization,
          target.what,
        );
        continue;
      }
      if (isRetryable(response.status) && failures < config.attempts) {
        failures++;
        const wait = retryAfter(response, config.maxDelay) ??
          backoff(config, failures);
        await response.body?.cancel().catch(() => {});
        await sleep(wait);
        continue;
      }
      if (response.ok || options.noStatusError) return response;
      throw await statusError(response, target, failures);
    }
  }

  // fetch with redirect: "manual", following up to 10 hops. Authorization
  // (the argument, or one in `headers`, as for a token realm) goes only to
  // the host first asked, and never again once a redirect has left it (blobs
  // redirect to object storage with signed URLs). `sameHost`: the response
  // came from the registry itself, not from where it redirected.
  async #follow(
    start: URL,
    headers: Record<string, string>,
    authorization: string | undefined,
    controller: AbortController,
  ): Promise<{ response: Response; sameHost: boolean }> {
    const { authorization: inHeaders, ...rest } = headers;
    authorization ??= inHeaders;
    let url = start;
    let stayed = true; // no redirect has left the first host
    for (let hop = 0;; hop++) {
      const sent: Record<string, string> = { ...rest };
      if (authorization && stayed) sent.authorization = authorization;
      const timer = setTimeout(
        () => controller.abort(new TransportError("timed out")),
        this.#config.timeout,
      );
      let response: Response;
      try {
        response = await this.#config.fetch(url, {
          headers: sent,
          redirect: "manual",
          signal: controller.signal,
        });
      } catch (error) {
        throw new TransportError(
          `${url.host}: ${(error as Error)?.message ?? error}`,
          { cause: error },
        );
      } finally {
        clearTimeout(timer);
      }
      const location = response.headers.get("location");
      if (
        ![301, 302, 303, 307, 308].includes(response.status) || !location
      ) {
        return { response, sameHost: stayed && url.host === this.base.host };
      }
      await response.body?.cancel().catch(() => {});
      if (hop >= 10) {
        throw new DockerSaveError(
          "REGISTRY_ERROR",
          `Cannot fetch ${start}: more than 10 redirects`,
        );
      }
      url = new URL(location, url);
      if (url.host !== start.host) stayed = false;
    }
  }

  #gaveUp(what: string, error: Error): DockerSaveError {
    return new DockerSaveError(
      "REGISTRY_ERROR",
      `Cannot fetch ${what}: ${error.message} (after ${
        this.#config.attempts + 1
      } attempts)`,
      { cause: error },
    );
  }

  // A stream over open() that resumes after a broken transfer.
  #resumable(
    open: (
      headers: Record<string, string>,
      attempt: Attempt,
    ) => Promise<Response>,
    size: number,
    what: string,
    start = 0,
  ): ReadableStream<Uint8Array> {
    const config = this.#config;
    let offset = start; // the blob's bytes passed on (or skipped at start)
    let skip = 0; // bytes of the current response already passed on
    let received = 0; // bytes of the current response
    let length: number | undefined; // its Content-Length
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const attempt: Attempt = {};
    let stalled = 0; // failures since the last byte
    let breaks = 0; // failures in all
    const connect = async () => {
      const headers: Record<string, string> = {};
      if (offset > 0) headers.range = `bytes=${offset}-`;
      const response = await open(headers, attempt);
      const range = parseContentRange(response.headers.get("content-range"));
      if (offset > 0 && response.status === 206 && range?.start === offset) {
        skip = 0;
      } else if (response.status === 206) {
        // A range we did not ask for: start over without one.
        attempt.controller?.abort();
        await response.body?.cancel().catch(() => {});
        throw new TransportError(`${what}: unexpected Content-Range`);
      } else {
        skip = offset; // Range ignored: the whole blob again
      }
      const header = response.headers.get("content-length");
      length = header === null ? undefined : Number(header);
      received = 0;
      if (!response.body) throw new TransportError(`${what}: no body`);
      reader = response.body.getReader();
    };
    return new ReadableStream<Uint8Array>({
      pull: async (stream) => {
        for (;;) {
          try {
            if (!reader) await connect();
            const { done, value } = await readWithin(
              reader!,
              config.timeout,
              attempt.controller!,
            );
            if (done) {
              // A clean end with every promised byte is the end, even if
              // short: save() reports the size mismatch.
              if (
                offset >= size ||
                (length !== undefined && received >= length)
              ) {
                stream.close();
                return;
              }
              throw new TransportError(
                `the transfer ended after ${offset} of ${size} bytes`,
              );
            }
            received += value.byteLength;
            let chunk = value;
            if (skip > 0) {
              const dropped = Math.min(skip, chunk.byteLength);
              skip -= dropped;
              chunk = chunk.subarray(dropped);
              if (chunk.byteLength === 0) continue;
            }
            offset += chunk.byteLength;
            stalled = 0;
            stream.enqueue(chunk);
            return;
          } catch (error) {
            reader?.cancel().catch(() => {});
            reader = undefined;
            attempt.controller?.abort();
            if (error instanceof DockerSaveError || attempt.cancelled) {
              throw error;
            }
            stalled++;
            breaks++;
            if (
              stalled > config.attempts || breaks > 4 * (config.attempts + 1)
            ) {
              throw new DockerSaveError(
                "REGISTRY_ERROR",
                `Cannot fetch ${what}: ${
                  (error as Error)?.message ?? error
                } (${offset} of ${size} bytes read, ${breaks} attempts)`,
                { cause: error },
              );
            }
            await sleep(backoff(config, stalled));
          }
        }
      },
      cancel: async (reason) => {
        attempt.cancelled = true;
        attempt.controller?.abort();
        await reader?.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }
}

function pull(repository: string): string {
  return `repository:${repository}:pull`;
}

function isRetryable(status: number): boolean {
  return status === 408 || status === 429 ||
    (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

function backoff(config: ClientConfig, failures: number): number {
  const exponential = config.delay * 2 ** (failures - 1);
  return Math.min(config.maxDelay, exponential) * (0.5 + Math.random() / 2);
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

function parseContentRange(
  header: string | null,
): { start: number; total?: number } | undefined {
  const match = header?.match(/^bytes (\d+)-\d+\/(\d+|\*)$/);
  if (!match) return undefined;
  return {
    start: Number(match[1]),
    total: match[2] === "*" ? undefined : Number(match[2]),
  };
}

// reader.read(), or a TransportError (and an aborted fetch) after `ms`
// without data.
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
  controller: AbortController,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new TransportError(`no data for ${ms} ms`);
          controller.abort(error);
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

// A whole (small) body, at most `limit` bytes.
async function readLimited(
  response: Response,
  limit: number,
  ms: number,
  controller: AbortController,
  what: string,
): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await readWithin(reader, ms, controller);
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
    controller.abort();
    await reader.cancel().catch(() => {});
    throw error;
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

async function statusError(
  response: Response,
  target: Target,
  failures: number,
): Promise<DockerSaveError> {
  let detail = "";
  try {
    const text = (await response.text()).slice(0, 4096);
    const errors = JSON.parse(text)?.errors;
    if (Array.isArray(errors) && errors.length) {
      detail = errors.map((e: { code?: unknown; message?: unknown }) =>
        [e?.code, e?.message].filter((s) => typeof s === "string").join(": ")
      ).filter(Boolean).join("; ");
    }
  } catch { /* no registry error body */ }
  const status = `status ${response.status}${detail ? `, ${detail}` : ""}`;
  let code: DockerSaveErrorCode = "REGISTRY_ERROR";
  let reason = `the registry answered ${status}`;
  if (response.status === 404) {
    code = target.kind === "manifest" ? "MANIFEST_NOT_FOUND" : "BLOB_NOT_FOUND";
    reason = `not found (${status})`;
  } else if (response.status === 401 || response.status === 403) {
    code = "UNAUTHORIZED";
    reason = `access denied (${status})`;
  } else if (failures > 0) {
    reason += ` after ${failures + 1} attempts`;
  }
  return new DockerSaveError(code, `Cannot fetch ${target.what}: ${reason}`);
}
