/**
 * The registry API a pull needs (manifests, blobs, a blob's tail, foreign
 * URLs), after go-containerregistry's `remote/fetcher.go`, composed from the
 * transport (retries, redirects, errors: `_registry_transport.ts`), the auth
 * wrapping it (`_registry_auth.ts`) and resumable blob streams
 * (`_registry_blob_stream.ts`).
 *
 * Nothing here checks digests of blobs: `save()` does, while streaming.
 *
 * @module
 */

import { assertSha256Digest } from "../../model/digest.ts";
import { DockerSaveError } from "../../model/errors.ts";
import type { Descriptor } from "../../model/image.ts";
import { MEDIA_TYPES } from "../../model/image.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import { RegistryAuth } from "./auth.ts";
import { MAX_JSON_BYTES, readAtMost } from "../bounded_read.ts";
import type { CredentialsFound } from "./docker_config.ts";
import {
  parseContentRange,
  resumableBlob,
  type ResumableBlobOptions,
} from "./blob_stream.ts";
import {
  Exchange,
  RegistryTransport,
  type Target,
  TransportError,
  type TransportOptions,
} from "./transport.ts";

// Every manifest type we read, for `Accept`.
const MANIFEST_ACCEPT: string = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(", ");

/**
 * How one registry is reached.
 *
 * @example
 * ```ts
 * import type { ClientConfig } from "./client.ts";
 * const config: ClientConfig = {
 *   registry: "docker.io", host: "registry-1.docker.io", secure: true,
 *   fetch, credentials: async () => ({}),
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * };
 * ```
 */
export interface ClientConfig extends Omit<TransportOptions, "allowHttp"> {
  /** The registry as named (`docker.io`, `localhost:5000`), for messages. */
  registry: string;
  /** `host[:port]` API requests go to. */
  host: string;
  /** HTTPS (else plain HTTP, also allowed for redirects and realms). */
  secure: boolean;
  /**
   * Finds this registry's credentials, asked once, when the registry wants
   * them.
   */
  credentials: () => Promise<CredentialsFound>;
}

// Configs are read whole; larger ones are refused rather than allocated.
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/**
 * One registry's client.
 *
 * @example
 * ```ts
 * import { RegistryClient } from "./client.ts";
 * const client = new RegistryClient({
 *   registry: "localhost:5000", host: "localhost:5000", secure: false,
 *   fetch, credentials: async () => ({}),
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * });
 * const { bytes } = await client.manifest("team/app", "v1", "localhost:5000/team/app:v1");
 * ```
 */
export class RegistryClient {
  /** The registry's API root, `http[s]://host`. */
  readonly base: URL;
  #auth: RegistryAuth;
  #transport: RegistryTransport;

  /**
   * Creates a client; nothing is sent until a method is called.
   *
   * @param config how to reach the registry
   */
  constructor(config: ClientConfig) {
    this.base = new URL(`${config.secure ? "https" : "http"}://${config.host}`);
    this.#transport = new RegistryTransport({
      ...config,
      allowHttp: !config.secure,
    });
    this.#auth = new RegistryAuth({
      registry: config.registry,
      credentials: config.credentials,
      transport: this.#transport,
    });
  }

  /**
   * A manifest's exact bytes, its media type (from the body, else
   * `Content-Type`) and the `Docker-Content-Digest` header, if any.
   */
  manifest(
    repository: string,
    reference: string,
    what: string,
  ): Promise<{ bytes: Uint8Array; mediaType?: string; digest?: string }> {
    const url = new URL(`/v2/${repository}/manifests/${reference}`, this.base);
    const target: Target = { what, notFound: "MANIFEST_NOT_FOUND" };
    const exchange = new Exchange();
    return this.#transport.retry(what, exchange, async () => {
      const response = await this.#get(
        url,
        { accept: MANIFEST_ACCEPT },
        repository,
        target,
        exchange,
      );
      const bytes = await this.#transport.read(
        response,
        MAX_JSON_BYTES,
        exchange,
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
    });
  }

  /**
   * A small blob (a config) read whole, resuming if interrupted, each
   * response within `timeout` in all; more bytes than its descriptor's size
   * are refused (`SIZE_MISMATCH`).
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
    const bytes = await readAtMost(
      this.openBlob(repository, descriptor, what, 0, { whole: true }),
      descriptor.size,
    );
    if (bytes === undefined) {
      throw new DockerSaveError(
        "SIZE_MISMATCH",
        `Cannot verify ${what}: it has more than ${descriptor.size} bytes`,
      );
    }
    return bytes;
  }

  /**
   * A blob as a pull-based stream of exactly the bytes the registry serves,
   * from byte `start` (a `Range` request), resumed when a transfer breaks.
   */
  openBlob(
    repository: string,
    descriptor: Descriptor,
    what: string,
    start = 0,
    options?: ResumableBlobOptions,
  ): ReadableStream<Uint8Array> {
    const url = this.#blobUrl(repository, descriptor);
    const target: Target = { what, notFound: "BLOB_NOT_FOUND" };
    return resumableBlob(
      this.#transport,
      (headers, exchange) =>
        this.#get(url, headers, repository, target, exchange),
      descriptor.size,
      what,
      start,
      options,
    );
  }

  /**
   * A foreign layer from the `urls` that may be fetched (`https:`, or
   * `http:` for an insecure registry), tried in order and sent no
   * credentials, resumed like `openBlob`; from the registry itself when none
   * may (go-containerregistry also falls back to the registry).
   */
  openForeign(
    repository: string,
    descriptor: Descriptor,
    what: string,
  ): ReadableStream<Uint8Array> {
    const transport = this.#transport;
    const urls = (descriptor.urls ?? []).filter((url) => transport.allows(url));
    if (!urls.length) return this.openBlob(repository, descriptor, what);
    return resumableBlob(
      transport,
      async (headers, exchange) => {
        let last: unknown;
        for (const url of urls) {
          const target: Target = {
            what: `${what} from ${untrustedText(url)}`,
            notFound: "BLOB_NOT_FOUND",
          };
          try {
            const { response } = await transport.send(
              new URL(url),
              { headers },
              exchange,
            );
            if (response.ok) return response;
            throw await transport.statusError(response, target, exchange);
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
    const url = this.#blobUrl(repository, descriptor);
    const target: Target = { what, notFound: "BLOB_NOT_FOUND" };
    const headers = { range: `bytes=${size - length}-${size - 1}` };
    const exchange = new Exchange();
    const response = await this.#transport.retry(
      what,
      exchange,
      () => this.#get(url, headers, repository, target, exchange),
    );
    const range = parseContentRange(response.headers.get("content-range"));
    if (
      response.status !== 206 || range?.start !== size - length ||
      (range.total !== undefined && range.total !== size)
    ) {
      exchange.controller.abort();
      await response.body?.cancel().catch(() => {});
      return undefined;
    }
    try {
      const bytes = await this.#transport.read(
        response,
        length,
        exchange,
        what,
      );
      return bytes.byteLength === length ? bytes : undefined;
    } catch (error) {
      if (error instanceof TransportError) return undefined;
      throw error;
    }
  }

  // Digests reach URL paths only as sha256 and 64 hex digits (a "../" in
  // one would resolve to another path).
  #blobUrl(repository: string, descriptor: Descriptor): URL {
    assertSha256Digest(descriptor.digest, `blob of ${repository}`);
    return new URL(`/v2/${repository}/blobs/${descriptor.digest}`, this.base);
  }

  // One authorised attempt at a registry URL: a 2xx response, or the
  // DockerSaveError its status maps to (the transport's errors otherwise).
  async #get(
    url: URL,
    headers: Record<string, string>,
    repository: string,
    target: Target,
    exchange: Exchange,
  ): Promise<Response> {
    const response = await this.#auth.send(
      url,
      headers,
      `repository:${repository}:pull`,
      exchange,
      target.what,
    );
    if (response.ok) return response;
    throw await this.#transport.statusError(response, target, exchange);
  }
}
