/**
 * Small, deterministic images and helpers for the bad-input, tag and v1
 * tests. Every expected value these helpers compute follows docs/FORMAT.md with
 * `node:crypto`, never our own code.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { packTar, unpackTar } from "modern-tar";

/** The golden "basic" case. */
export const BASIC_DIR = new URL("./testdata/basic/", import.meta.url).pathname;

/**
 * docs/FORMAT.md, "v1 ids": the digest the reference gives an empty layer,
 * without `sha256:`.
 */
export const EMPTY_LAYER_HEX =
  "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

/** Media types, spelled out here rather than taken from src/. */
export const MEDIA = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerTar: "application/vnd.docker.image.rootfs.diff.tar",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
} as const;

const encoder = new TextEncoder();

/** Lowercase hex sha256 of bytes or of a string's UTF-8. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(
    typeof data === "string" ? encoder.encode(data) : data,
  ).digest("hex");
}

/** `sha256:<hex>` of bytes or of a string's UTF-8. */
export function digestOf(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}

/**
 * The v1 id chain of docs/FORMAT.md: `sha256(hex + " " + parent)`, and for the
 * last history entry `sha256(hex + " " + parent + " " + configText)`.
 */
export function v1Id(hex: string, parent: string, configText?: string): string {
  return sha256Hex(
    configText === undefined
      ? `${hex} ${parent}`
      : `${hex} ${parent} ${configText}`,
  );
}

/** The hex part of a `sha256:` digest. */
export function hexPart(digest: string): string {
  return digest.slice(digest.lastIndexOf(":") + 1);
}

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
  const config = encoder.encode(JSON.stringify({
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

/** A small, deterministic layer tar (mtime 0) holding the given files. */
export function layerTar(files: Record<string, string>): Promise<Uint8Array> {
  return packTar(
    Object.entries(files).map(([name, text]) => ({
      header: {
        name,
        size: encoder.encode(text).byteLength,
        mtime: new Date(0),
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
      body: text,
    })),
  );
}

/** Reads a stream to its end, pushing every chunk into `chunks`. */
export async function collect(
  stream: ReadableStream<Uint8Array>,
  chunks: Uint8Array[],
): Promise<void> {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    chunks.push(value);
  }
}

/** The chunks as one byte array. */
export { concatBytes as concat } from "../src/util/streams.ts";

/** Asserts equal bytes, naming the first offset where they differ. */
export function assertSameBytes(
  actual: Uint8Array,
  expected: Uint8Array,
): void {
  const limit = Math.min(actual.length, expected.length);
  let at = 0;
  while (at < limit && actual[at] === expected[at]) at++;
  assert.ok(
    at === limit && actual.length === expected.length,
    `bytes differ at offset ${at} (lengths ${actual.length} vs ${expected.length})`,
  );
}

/** Whether bytes end with a tar's end: two 512-byte zero blocks. */
export function endsWithTarEnd(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 1024) return false;
  return bytes.subarray(bytes.byteLength - 1024).every((byte) => byte === 0);
}

/** A tarball's members, in order, read with modern-tar. */
export interface TarMember {
  name: string;
  data: Uint8Array;
}

/** The members of a tarball (bytes or stream). */
export async function readTar(
  tar: Uint8Array | ReadableStream<Uint8Array>,
): Promise<TarMember[]> {
  const entries = await unpackTar(tar, { strict: true });
  return entries.map((entry) => ({
    name: entry.header.name,
    data: entry.data ?? new Uint8Array(),
  }));
}

/** One member's text; fails when the member is absent or repeated. */
export function memberText(members: TarMember[], name: string): string {
  const found = members.filter((member) => member.name === name);
  if (found.length !== 1) {
    throw new Error(`expected one member "${name}", found ${found.length}`);
  }
  return new TextDecoder().decode(found[0].data);
}

/** The v1 layer directory names, in order of first appearance. */
export function v1Dirs(members: TarMember[]): string[] {
  const dirs: string[] = [];
  for (const { name } of members) {
    const slash = name.indexOf("/");
    if (slash < 0) continue;
    const dir = name.slice(0, slash);
    if (!dirs.includes(dir)) dirs.push(dir);
  }
  return dirs;
}

/** A writable copy of a directory tree in a new temp dir; `dispose` removes it. */
export function tempCopy(dir: string): { path: string; dispose(): void } {
  const root = mkdtempSync(join(tmpdir(), "docker-save-test-"));
  const copy = (from: string, to: string) => {
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        copy(join(from, entry.name), join(to, entry.name));
      } else {writeFileSync(
          join(to, entry.name),
          readFileSync(join(from, entry.name)),
        );}
    }
  };
  const path = join(root, "oci");
  copy(dir, path);
  return {
    path,
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A temp dir for the callback, removed afterwards. */
export async function withTemp<T>(
  prefix: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts two byte arrays are equal, naming what differs. */
export function sameBytes(
  actual: Uint8Array,
  expected: Uint8Array,
  what: string,
): void {
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`);
  assert.ok(
    Buffer.from(actual).equals(Buffer.from(expected)),
    `${what}: bytes differ`,
  );
}
