/**
 * A tiny registry in the test process, on 127.0.0.1: it serves one image's
 * manifests and blobs from memory (the Distribution API's GET/HEAD routes,
 * blob `Range` requests), and lets a test answer any request its own way —
 * an error body, a stalled blob, a hostile header. For what the Debian
 * registry cannot be made to do; real-registry tests use ./registry.ts.
 * And a fake `fetch` for tests that need no socket at all.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Cleanup } from "./cleanup.ts";
import { digestOf } from "./digest.ts";
import { MEDIA } from "./format.ts";
import { listen } from "./http.ts";
import type { Built, ImageParts } from "./images.ts";

/** What the test answers instead of the image's own bytes. */
export interface FakeAnswer {
  /** @default {200} */
  status?: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Send this many body bytes, then stall (never end the response). */
  stallAfter?: number;
}

/** A request the fake registry received. */
export interface FakeRequest {
  method: string;
  path: string;
  range?: string;
}

/** The content a fake registry serves. */
export interface FakeContent {
  /** Repository name, e.g. `"t/app"`. */
  repository: string;
  /** Manifests by tag or digest: media type and bytes. */
  manifests: Record<string, { mediaType: string; body: Uint8Array }>;
  /** Blobs by digest. */
  blobs: Record<string, Uint8Array>;
  /** Answers a request its own way; `undefined` serves the content. */
  answer?: (request: FakeRequest) => FakeAnswer | undefined;
}

/** A running fake registry. */
export interface FakeRegistry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Every request, in order. */
  requests: FakeRequest[];
}

/**
 * Starts a fake registry serving `content`, closed by `cleanup`.
 *
 * @example
 * ```ts
 * const registry = await startFakeRegistry(cleanup, content);
 * await fromRegistry(`${registry.host}/t/app:v1`);
 * ```
 */
export async function startFakeRegistry(
  cleanup: Cleanup,
  content: FakeContent,
): Promise<FakeRegistry> {
  const requests: FakeRequest[] = [];
  const { host } = await listen(cleanup, (req, res) => {
    req.resume();
    const request: FakeRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      range: req.headers.range,
    };
    requests.push(request);
    respond(request, content.answer?.(request) ?? serve(request, content), res);
  });
  return { host, requests };
}

function serve(request: FakeRequest, content: FakeContent): FakeAnswer {
  if (request.path === "/v2/" || request.path === "/v2") {
    return { body: "{}", headers: { "content-type": "application/json" } };
  }
  const prefix = `/v2/${content.repository}/`;
  if (request.path.startsWith(`${prefix}manifests/`)) {
    const reference = request.path.slice(`${prefix}manifests/`.length);
    const manifest = content.manifests[decodeURIComponent(reference)];
    if (manifest) {
      return {
        body: manifest.body,
        headers: {
          "content-type": manifest.mediaType,
          "docker-content-digest": digestOf(manifest.body),
        },
      };
    }
    return notFound("MANIFEST_UNKNOWN");
  }
  if (request.path.startsWith(`${prefix}blobs/`)) {
    const blob = content.blobs[request.path.slice(`${prefix}blobs/`.length)];
    if (!blob) return notFound("BLOB_UNKNOWN");
    const range = /^bytes=(\d*)-(\d*)$/.exec(request.range ?? "");
    if (!range) return { body: blob };
    const start = range[1] === ""
      ? blob.byteLength - Number(range[2])
      : Number(range[1]);
    const end = range[1] === "" || range[2] === ""
      ? blob.byteLength - 1
      : Math.min(Number(range[2]), blob.byteLength - 1);
    return {
      status: 206,
      body: blob.subarray(start, end + 1),
      headers: {
        "content-range": `bytes ${start}-${end}/${blob.byteLength}`,
      },
    };
  }
  return notFound("NAME_UNKNOWN");
}

function notFound(code: string): FakeAnswer {
  return {
    status: 404,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ errors: [{ code, message: "not found" }] }),
  };
}

function respond(
  request: FakeRequest,
  answer: FakeAnswer,
  res: ServerResponse<IncomingMessage>,
): void {
  const body = typeof answer.body === "string"
    ? new TextEncoder().encode(answer.body)
    : answer.body ?? new Uint8Array(0);
  res.writeHead(answer.status ?? 200, {
    "content-length": String(body.byteLength),
    ...answer.headers,
  });
  if (request.method === "HEAD") return void res.end();
  if (answer.stallAfter === undefined) return void res.end(body);
  res.write(body.subarray(0, answer.stallAfter));
}

/**
 * The content for one image: its manifest under `tag` and under its
 * digest, its config and layer blobs.
 *
 * @example
 * ```ts
 * const content = imageContent("t/app", "v1", makeParts({ layers: [tar] }));
 * ```
 */
export function imageContent(
  repository: string,
  tag: string,
  parts: ImageParts,
): FakeContent {
  const body = new TextEncoder().encode(JSON.stringify(parts.manifest));
  const manifest = {
    mediaType: parts.manifest.mediaType ?? MEDIA.ociManifest,
    body,
  };
  return {
    repository,
    manifests: { [tag]: manifest, [digestOf(body)]: manifest },
    blobs: {
      ...Object.fromEntries(parts.blobs),
      [parts.manifest.config.digest]: parts.config,
    },
  };
}

/** A fake registry over an injected fetch: routes by URL, logs requests. */
export function fakeFetch(
  routes: (url: URL, headers: Headers) => Response | undefined,
): { fetch: typeof fetch; log: { url: string; headers: Headers }[] } {
  const log: { url: string; headers: Headers }[] = [];
  const fake = (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    log.push({ url: url.href, headers });
    return Promise.resolve(
      routes(url, headers) ?? new Response("{}", { status: 404 }),
    );
  };
  return { fetch: fake as typeof fetch, log };
}

/**
 * What a registry answers for `url` holding `built` as `…:v1`: the manifest,
 * the config and layer blobs, else 404.
 */
export function serveBuilt(built: Built, url: URL): Response {
  if (url.pathname.endsWith("/manifests/v1")) {
    return new Response(built.manifest as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": MEDIA.ociManifest },
    });
  }
  const blob = url.pathname.endsWith(digestOf(built.config))
    ? built.config
    : built.layers.find((l) => url.pathname.endsWith(l.digest))?.blob;
  return blob
    ? new Response(blob as Uint8Array<ArrayBuffer>)
    : new Response("", { status: 404 });
}
