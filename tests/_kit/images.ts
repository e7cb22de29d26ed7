/**
 * Small, deterministic images built by hand: their parts as plain values a
 * test can break one at a time (digests and diff_ids computed with
 * node:crypto, never our own code), the golden "basic" image's parts, and
 * gzip images (single- or multi-member) as registries serve them.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { type Image, MEDIA_TYPES } from "../../src/model/image.ts";
import { fromMemory } from "../../src/sources/memory.ts";
import { text } from "./bytes.ts";
import { digestOf, hexPart } from "./digest.ts";
import { MEDIA } from "./format.ts";
import { TESTDATA } from "./golden.ts";
import { layerTar } from "./tar.ts";

/** The golden "basic" case. */
export const BASIC_DIR = `${TESTDATA}basic/`;

/** A layer descriptor as it appears in a manifest. */
export interface LayerDescriptor {
  mediaType: string;
  size: number;
  digest: string;
}

/** A manifest as a plain value the tests can tamper with. */
export interface ManifestValue {
  schemaVersion: number;
  mediaType?: string;
  config: { mediaType: string; size: number; digest: string };
  layers: LayerDescriptor[];
}

/** The stored parts of an image, ready for `fromMemory`. */
export interface ImageParts {
  manifest: ManifestValue;
  config: Uint8Array;
  blobs: Map<string, Uint8Array>;
}

/** The golden "basic" image, read from its OCI layout. */
export function basicParts(): ImageParts {
  const oci = `${BASIC_DIR}oci/blobs/sha256/`;
  const read = (digest: string) =>
    new Uint8Array(readFileSync(`${oci}${hexPart(digest)}`));
  const index = JSON.parse(readFileSync(`${BASIC_DIR}oci/index.json`, "utf8"));
  const manifest = JSON.parse(
    new TextDecoder().decode(read(index.manifests[0].digest)),
  ) as ManifestValue;
  const blobs = new Map<string, Uint8Array>();
  for (const layer of manifest.layers) {
    blobs.set(layer.digest, read(layer.digest));
  }
  return { manifest, config: read(manifest.config.digest), blobs };
}

/** A manifest's config descriptor for the given config bytes. */
export function configDescriptor(
  config: Uint8Array,
): ManifestValue["config"] {
  return {
    mediaType: MEDIA.dockerConfig,
    size: config.byteLength,
    digest: digestOf(config),
  };
}

/** Options for `makeParts`. */
export interface MakePartsOptions {
  /** Uncompressed layer tars, base first. */
  layers: Uint8Array[];
  /** Config fields; `rootfs` is filled in from the layers. */
  config?: Record<string, unknown>;
  /** Store layers as gzip (node:zlib) or as plain tars. */
  gzip?: boolean;
  /** Replace the computed diff_ids. */
  diffIds?: string[];
}

/**
 * An image built by hand (digests and diff_ids computed with node:crypto),
 * so a test can break one part and keep the others consistent.
 */
export function makeParts(options: MakePartsOptions): ImageParts {
  const blobs = new Map<string, Uint8Array>();
  const layers: LayerDescriptor[] = options.layers.map((tar) => {
    const blob = options.gzip ? new Uint8Array(gzipSync(tar)) : tar;
    blobs.set(digestOf(blob), blob);
    return {
      mediaType: options.gzip ? MEDIA.dockerLayerGzip : MEDIA.dockerLayerTar,
      size: blob.byteLength,
      digest: digestOf(blob),
    };
  });
  const config = text(JSON.stringify({
    ...(options.config ?? { architecture: "amd64", os: "linux" }),
    rootfs: {
      type: "layers",
      diff_ids: options.diffIds ?? options.layers.map((tar) => digestOf(tar)),
    },
  }));
  return {
    manifest: {
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: configDescriptor(config),
      layers,
    },
    config,
    blobs,
  };
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
    layers.push({ digest: digestOf(blob), blob, tar });
  }
  const config = text(JSON.stringify({
    architecture: options.architecture ?? "amd64",
    os: "linux",
    ...(options.variant ? { variant: options.variant } : {}),
    rootfs: { type: "layers", diff_ids: layers.map((l) => digestOf(l.tar)) },
    history: layers.map((_, i) => ({ created_by: `layer ${i}` })),
  }));
  const manifest = text(JSON.stringify({
    schemaVersion: 2,
    mediaType: oci ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest,
    config: {
      mediaType: oci ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig,
      size: config.length,
      digest: digestOf(config),
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
