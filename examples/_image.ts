/**
 * The request handler shared by the example servers (`deno_server.ts`,
 * `bun_server.ts`, `worker.ts`): it picks the image a request names and
 * answers with `saveResponse()`: `Content-Length` and `ETag` where the length
 * is known up front, `Range` / `If-Range` (resumable downloads) and `HEAD`.
 * Runtime-neutral: no `node:` import, no runtime global at top level, so it
 * also runs in a worker or a browser.
 *
 * - `GET /save?tag=T`: a small built-in image (`buildImage`, plain layers,
 *   the same bytes on every runtime); `tag` defaults to
 *   `docker-save/sample:latest`.
 * - `GET /save?big=MiB&tag=T`: one generated plain layer of `MiB` MiB (at
 *   most 4096), produced chunk by chunk as it is pulled and never held in
 *   memory; what was pulled from it is reported by `/stats`; `tag` defaults
 *   to `docker-save/big:<MiB>m`.
 * - `GET /save?oci=DIR[&ref=R]&tag=T`: an OCI layout under the server's
 *   `ociRoot` (`DIR` is a relative path without `..`); `tag` defaults to `R`.
 * - `GET /save?image=REF[&tag=T]`: a registry image (`fromRegistry`), only
 *   from the registries the server allows; `tag` defaults to `REF`. The
 *   server's own docker credentials are never used.
 * - Any `/save` also takes `&layers=compressed`: layers as the source keeps
 *   them (gzip), not inflated; every length is then known up front, so
 *   ranges work for registry images too. Default `uncompressed`, what
 *   `docker save` writes.
 * - `GET /stats`: the generated layer streams (bytes pulled, open, done or
 *   cancelled) and the process's resident memory, as JSON.
 *
 * Statuses: 400 a bad `tag`, `image`, `layers` or `big` (`BAD_TAG`,
 * `BAD_REFERENCE`); 403 a registry not allowed; 404 no such image, platform
 * or layout (`MANIFEST_NOT_FOUND`, `PLATFORM_NOT_FOUND`, `BAD_LAYOUT`); 405
 * not GET or HEAD; 502 any other `DockerSaveError` before the first byte
 * (the registry failed or sent something bad: `REGISTRY_ERROR`,
 * `UNAUTHORIZED`, `DIGEST_MISMATCH`, …), its body `CODE: message`. Once the
 * 200 is sent, a failure errors the body: the client sees a cut-short
 * download, never a wrong tarball that ends cleanly.
 *
 * @module
 */

import {
  buildImage,
  type Descriptor,
  DockerSaveError,
  type DockerSaveErrorCode,
  fromOciLayout,
  fromRegistry,
  type Image,
  type LayerMode,
  type Manifest,
  MEDIA_TYPES,
  normalizeReference,
  saveResponse,
} from "../mod.ts";
import { parseTag } from "../src/model/tag.ts";
// Incremental sha256 (node:crypto or @noble/hashes) for the generated layer.
import { createSha256 } from "../src/runtime/hash.ts";

/** What a server lets requests reach besides the built-in images. */
export interface HandlerOptions {
  /** Folder holding the OCI layouts `?oci=` may name; unset: none. */
  ociRoot?: string;
  /**
   * Registries `?image=` may pull from (`docker.io`, `ghcr.io`,
   * `127.0.0.1:5000`), or `"*"` for any; unset: none.
   */
  registries?: readonly string[] | "*";
}

/** The default tag of the built-in sample image. */
export const SAMPLE_TAG = "docker-save/sample:latest";

/** Answers one request (see the module docs for the routes). */
export async function handle(
  request: Request,
  options: HandlerOptions = {},
): Promise<Response> {
  const url = new URL(request.url);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return text(405, "Only GET and HEAD");
  }
  if (url.pathname === "/stats") return Response.json(stats());
  if (url.pathname !== "/save") return text(404, "Try /save?tag=app:v1");
  const query = url.searchParams;
  const layers = query.get("layers") ?? "uncompressed";
  if (!LAYER_MODES.includes(layers as LayerMode)) {
    return text(400, "layers must be uncompressed or compressed");
  }
  try {
    let tag = query.get("tag");
    let image: Image;
    if (query.has("image")) {
      const reference = query.get("image")!;
      const registry = normalizeReference(reference).split("/")[0];
      const allowed = options.registries;
      if (allowed !== "*" && !allowed?.includes(registry)) {
        return text(403, `Registry ${registry} is not allowed here`);
      }
      image = await fromRegistry(reference, { dockerConfig: false });
      tag ??= reference;
    } else if (query.has("oci")) {
      const dir = query.get("oci")!;
      const ref = query.get("ref") ?? undefined;
      if (!options.ociRoot) return text(404, "No OCI layouts here");
      if (!/^[\w-][\w.-]*(\/[\w-][\w.-]*)*$/.test(dir)) {
        return text(400, `Bad layout path ${JSON.stringify(dir)}`);
      }
      image = await fromOciLayout(`${options.ociRoot}/${dir}`, ref);
      tag ??= ref ?? null;
    } else if (query.has("big")) {
      const mib = Number(query.get("big"));
      if (!Number.isInteger(mib) || mib < 1 || mib > 4096) {
        return text(400, "big must be a whole number of MiB, 1 to 4096");
      }
      image = await bigImage(mib);
      tag ??= `docker-save/big:${mib}m`;
    } else {
      image = await sampleImage();
    }
    tag ??= SAMPLE_TAG;
    parseTag(tag); // a bad tag is a 400, not a tarball cut short
    const response = await saveResponse(request, [[tag, image]], {
      layers: layers as LayerMode,
    });
    response.headers.set(
      "content-disposition",
      `attachment; filename="${tag.replace(/[^\w.-]+/g, "_")}.tar"`,
    );
    return response;
  } catch (error) {
    if (!(error instanceof DockerSaveError)) throw error;
    return text(STATUS[error.code] ?? 502, `${error.code}: ${error.message}`);
  }
}

const LAYER_MODES: readonly LayerMode[] = ["uncompressed", "compressed"];

const STATUS: Partial<Record<DockerSaveErrorCode, number>> = {
  BAD_TAG: 400,
  BAD_REFERENCE: 400,
  BAD_LAYOUT: 404,
  MANIFEST_NOT_FOUND: 404,
  PLATFORM_NOT_FOUND: 404,
};

function text(status: number, body: string): Response {
  return new Response(body + "\n", { status });
}

// --- The built-in images ----------------------------------------------------

const encoder = new TextEncoder();

/** A ustar header for a regular file (mode 0644, owner 0, mtime 0). */
function tarHeader(name: string, size: number): Uint8Array {
  const header = new Uint8Array(512);
  const put = (value: string, at: number) =>
    header.set(encoder.encode(value), at);
  put(name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(size.toString(8).padStart(11, "0") + "\0", 124);
  put("00000000000\0", 136);
  put("        0", 148); // blank checksum, then type "0"
  put("ustar\x0000", 257);
  const sum = header.reduce((total, byte) => total + byte, 0);
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return header;
}

/** A layer tar holding the given files. */
function layerTar(files: Record<string, string>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, content] of Object.entries(files)) {
    const body = encoder.encode(content);
    parts.push(tarHeader(name, body.byteLength), body);
    parts.push(new Uint8Array((512 - body.byteLength % 512) % 512));
  }
  parts.push(new Uint8Array(1024));
  const tar = new Uint8Array(parts.reduce((n, part) => n + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    tar.set(part, at);
    at += part.byteLength;
  }
  return tar;
}

let sample: Promise<Image> | undefined;

/** The built-in sample: two plain layers, a fixed config. */
export function sampleImage(): Promise<Image> {
  return sample ??= buildImage({
    mediaTypes: "docker",
    layers: [
      layerTar({ "etc/os-release": 'NAME="docker-save sample"\n' }),
      layerTar({ "app/hello.sh": "#!/bin/sh\necho hello from docker-save\n" }),
    ],
    config: {
      architecture: "amd64",
      os: "linux",
      created: "2024-01-01T00:00:00Z",
      config: { Cmd: ["/bin/sh", "/app/hello.sh"] },
      history: [
        { created: "2024-01-01T00:00:00Z", created_by: "ADD rootfs /" },
        { created: "2024-01-01T00:00:00Z", created_by: "COPY hello.sh /app/" },
      ],
    },
  });
}

const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;

/**
 * The chunks of a layer tar holding one file `big.bin` of `mib` MiB of
 * pseudo-random bytes (incompressible), each chunk made when asked for.
 */
function* bigLayerChunks(mib: number): Generator<Uint8Array> {
  yield tarHeader("big.bin", mib * MiB);
  const block = new Uint8Array(CHUNK);
  let x = 2463534242;
  for (let i = 0; i < CHUNK; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block[i] = x & 0xff;
  }
  for (let index = 0; index < mib * MiB / CHUNK; index++) {
    const chunk = block.slice();
    new DataView(chunk.buffer).setUint32(0, index); // no two chunks alike
    yield chunk;
  }
  yield new Uint8Array(1024);
}

/** One stream opened on a generated layer, as `/stats` reports it. */
export interface LayerStream {
  /** Opening order, from 1. */
  id: number;
  /** The layer's length. */
  size: number;
  /** Bytes handed to `save()` so far. */
  pulled: number;
  /** `open` until read to the end (`done`) or cancelled. */
  state: "open" | "done" | "cancelled";
}

/** What `/stats` answers. */
export interface Stats {
  /** The latest generated-layer streams, oldest first. */
  streams: LayerStream[];
  /** Resident memory of the process, where the runtime tells it. */
  rss?: number;
}

const streams: LayerStream[] = [];

/** The generated-layer streams and the process's memory. */
export function stats(): Stats {
  const runtime = globalThis as {
    Deno?: { memoryUsage(): { rss: number } };
    process?: { memoryUsage?(): { rss: number } };
  };
  const rss = runtime.Deno?.memoryUsage().rss ??
    runtime.process?.memoryUsage?.().rss;
  return { streams: streams.map((s) => ({ ...s })), rss };
}

/** A stream over the generated layer that records what is pulled. */
function openBigLayer(mib: number): ReadableStream<Uint8Array> {
  const chunks = bigLayerChunks(mib);
  const record: LayerStream = {
    id: (streams.at(-1)?.id ?? 0) + 1,
    size: mib * MiB + 1536,
    pulled: 0,
    state: "open",
  };
  streams.push(record);
  if (streams.length > 100) streams.shift();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const { done, value } = chunks.next();
      if (done) {
        record.state = "done";
        controller.close();
      } else {
        record.pulled += value.byteLength;
        controller.enqueue(value);
      }
    },
    cancel() {
      record.state = "cancelled";
      console.error(
        `layer stream ${record.id}: cancelled after ${record.pulled} of ${record.size} bytes`,
      );
    },
  }, { highWaterMark: 0 }); // nothing is made before it is asked for
}

const bigImages = new Map<number, Promise<Image>>();

/** An image of one generated layer; its digest is computed once per size. */
export function bigImage(mib: number): Promise<Image> {
  let image = bigImages.get(mib);
  if (!image) {
    image = makeBigImage(mib);
    bigImages.set(mib, image);
  }
  return image;
}

async function makeBigImage(mib: number): Promise<Image> {
  const hash = await createSha256();
  for (const chunk of bigLayerChunks(mib)) await hash.update(chunk);
  const layer: Descriptor = {
    mediaType: MEDIA_TYPES.ociLayerTar,
    digest: `sha256:${await hash.hexDigest()}`,
    size: mib * MiB + 1536,
  };
  const config = encoder.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [layer.digest] },
  }));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: {
      mediaType: MEDIA_TYPES.ociConfig,
      digest: `sha256:${await sha256HexOf(config)}`,
      size: config.byteLength,
    },
    layers: [layer],
  };
  const rawManifest = encoder.encode(JSON.stringify(manifest));
  return {
    rawManifest: () => Promise.resolve(rawManifest),
    manifest: () => Promise.resolve(structuredClone(manifest)),
    rawConfig: () => Promise.resolve(config),
    openLayer: () => Promise.resolve(openBigLayer(mib)),
  };
}

async function sha256HexOf(bytes: Uint8Array): Promise<string> {
  const hash = await createSha256();
  await hash.update(bytes);
  return await hash.hexDigest();
}
