/**
 * Images, options and a fake `fetch` shared by the registry test files.
 *
 * @module
 */

import { test } from "node:test";
import { gzipSync } from "node:zlib";
import type { Image } from "../src/model/image.ts";
import { MEDIA_TYPES } from "../src/model/image.ts";
import { save, type SaveOptions } from "../src/save/save.ts";
import { fromMemory } from "../src/sources/memory.ts";
import type { FromRegistryOptions } from "../src/sources/registry/pull.ts";
import { tarStream } from "../src/save/tar_writer.ts";
import { goldenCases, readAll } from "./_golden.ts";
import {
  Cleanup,
  pushLayout,
  type Registry,
  requireTools,
  sha256,
  skip,
  startRegistry,
} from "./_registry.ts";

/** The timeout of one registry test. */
export const TIMEOUT = 60_000;
/** The golden case the registry tests push and pull. */
export const [basic] = goldenCases().filter((c) => c.name === "basic");
/** Its OCI layout. */
export const LAYOUT = `${basic.dir}/oci`;
/** Options for quick retries and no docker config. */
export const FAST: FromRegistryOptions = {
  retry: { delay: 1, maxDelay: 5 },
  dockerConfig: false,
};
/** A user of the test registries. */
export const USER = "alice";
/** Their password (with a colon and a space). */
export const PASS = "s3cret:with colon";

/** The registry tests: skipped without the tools, failing on CI. */
export function registryTest(
  name: string,
  fn: (cleanup: Cleanup) => Promise<void>,
) {
  test(name, { skip, timeout: TIMEOUT }, async () => {
    requireTools();
    const cleanup = new Cleanup();
    try {
      await fn(cleanup);
    } finally {
      await cleanup.close();
    }
  });
}

/** The tarball `save()` writes for one image. */
export async function saved(
  tag: string,
  image: Image,
  options?: SaveOptions,
): Promise<Uint8Array> {
  return await readAll(save([[tag, image]], options));
}

/** UTF-8 bytes of a string. */
export const text = (s: string) => new TextEncoder().encode(s);

/** A layer tar of files. */
export async function layerTar(
  files: [string, Uint8Array][],
): Promise<Uint8Array> {
  return await readAll(
    tarStream(files.map(([name, body]) => ({ name, size: body.length, body }))),
  );
}

/** Bytes that compress a little: random blocks between text. */
export function payload(size: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    if ((i >> 12) % 2) bytes[i] = 97 + (i % 26);
    else {
      // xorshift32
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      bytes[i] = x & 0xff;
    }
  }
  return bytes;
}

/** An image built by `buildGzipImage`, with its parts. */
export interface Built {
  image: Image;
  manifest: Uint8Array;
  config: Uint8Array;
  layers: { digest: string; blob: Uint8Array; tar: Uint8Array }[];
}

/**
 * An image with gzip layers made by node:zlib: `members` > 1 makes each
 * layer a multi-member gzip (as eStargz and pigz --independent do).
 */
export async function buildGzipImage(options: {
  architecture?: string;
  variant?: string;
  files: [string, Uint8Array][][];
  members?: number;
  mediaTypes?: "oci" | "docker";
  foreign?: { index: number; urls: string[] };
}): Promise<Built> {
  const oci = (options.mediaTypes ?? "oci") === "oci";
  const layers: Built["layers"] = [];
  for (const files of options.files) {
    const tar = await layerTar(files);
    const members = options.members ?? 1;
    const cut = Math.floor(tar.length / members);
    const parts: Uint8Array[] = [];
    for (let m = 0; m < members; m++) {
      const end = m === members - 1 ? tar.length : (m + 1) * cut;
      parts.push(new Uint8Array(gzipSync(tar.subarray(m * cut, end))));
    }
    const blob = new Uint8Array(Buffer.concat(parts));
    layers.push({ digest: sha256(blob), blob, tar });
  }
  const config = text(JSON.stringify({
    architecture: options.architecture ?? "amd64",
    os: "linux",
    ...(options.variant ? { variant: options.variant } : {}),
    rootfs: { type: "layers", diff_ids: layers.map((l) => sha256(l.tar)) },
    history: layers.map((_, i) => ({ created_by: `layer ${i}` })),
  }));
  const manifest = text(JSON.stringify({
    schemaVersion: 2,
    mediaType: oci ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest,
    config: {
      mediaType: oci ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig,
      size: config.length,
      digest: sha256(config),
    },
    layers: layers.map((layer, i) => ({
      mediaType: options.foreign?.index === i
        ? (oci
          ? MEDIA_TYPES.ociForeignLayerGzip
          : MEDIA_TYPES.dockerForeignLayerGzip)
        : oci
        ? MEDIA_TYPES.ociLayerGzip
        : MEDIA_TYPES.dockerLayerGzip,
      size: layer.blob.length,
      digest: layer.digest,
      ...(options.foreign?.index === i ? { urls: options.foreign.urls } : {}),
    })),
  }));
  const image = fromMemory({
    manifest,
    config,
    blobs: new Map(layers.map((layer) => [layer.digest, layer.blob])),
  });
  return { image, manifest, config, layers };
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

/** JSON bytes of a value. */
export function json(value: unknown): Uint8Array {
  return text(JSON.stringify(value));
}

/**
 * What a registry answers for `url` holding `built` as `…:v1`: the manifest,
 * the config and layer blobs, else 404.
 */
export function serveBuilt(built: Built, url: URL): Response {
  if (url.pathname.endsWith("/manifests/v1")) {
    return new Response(built.manifest as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": MEDIA_TYPES.ociManifest },
    });
  }
  const blob = url.pathname.endsWith(sha256(built.config))
    ? built.config
    : built.layers.find((l) => url.pathname.endsWith(l.digest))?.blob;
  return blob
    ? new Response(blob as Uint8Array<ArrayBuffer>)
    : new Response("", { status: 404 });
}

/** A second user of the test registries. */
export const BOB = "bob";
/** Their password. */
export const BOB_PASS = "hunter2-secret";

/** The `Authorization` value of Basic credentials. */
export const basicAuth = (user: string, pass: string): string =>
  `Basic ${btoa(`${user}:${pass}`)}`;

/** An htpasswd registry for `user` holding oracle/basic:v1 (the golden case). */
export async function privateRegistry(
  cleanup: Cleanup,
  user: string,
  pass: string,
): Promise<Registry> {
  const registry = await startRegistry(cleanup, {
    htpasswd: { username: user, password: pass },
  });
  await pushLayout(LAYOUT, "basic", registry.url, "oracle/basic", "v1", {
    authorization: basicAuth(user, pass),
  });
  return registry;
}
