/**
 * The one walk of nested image indexes, for every source and every stage
 * (after go-containerregistry's `partial.FindManifests`): one depth rule,
 * one visited set, one error. An index may list the same child many times,
 * and a nested index may list the next one many times again: the paths
 * multiply (K levels of N entries are N^K paths), the blobs do not. So each
 * child is asked for and checked once, whatever the number of paths to it,
 * and the work is the size of the blobs, not the count of the paths.
 *
 * @module
 */

import { assertSha256Digest, sha256Hex } from "./digest.ts";
import { DockerSaveError } from "./errors.ts";
import type { Descriptor, Image, Platform } from "./image.ts";
import { type ImageIndex, isImageIndex } from "./image_index.ts";
import { parseIndexManifest } from "./index_manifest.ts";
import { isIndexMediaType } from "./manifest.ts";
import { choosePlatform, isAttestation } from "./platform.ts";

/**
 * How many indexes a path may hold before a manifest must come: the index an
 * image reference (or a layout's `index.json` entry) names is the first. Real
 * images nest one or two.
 *
 * @example
 * ```ts
 * import { MAX_INDEX_DEPTH } from "./index_walk.ts";
 * MAX_INDEX_DEPTH; // 4
 * ```
 */
export const MAX_INDEX_DEPTH = 4;

/**
 * The one depth rule: whether an index that is the `depth`-th on its path
 * (the first is 1) may be read.
 *
 * @example
 * ```ts
 * import { isIndexDepthAllowed } from "./index_walk.ts";
 * isIndexDepthAllowed(4); // true
 * isIndexDepthAllowed(5); // false
 * ```
 */
export function isIndexDepthAllowed(depth: number): boolean {
  return depth <= MAX_INDEX_DEPTH;
}

/**
 * The one depth error: `BAD_MANIFEST` when the `depth`-th index on a path
 * (the first is 1) is one too many.
 *
 * @example
 * ```ts
 * import { assertIndexDepth } from "./index_walk.ts";
 * assertIndexDepth(1, 'index of "app:v1"');
 * ```
 */
export function assertIndexDepth(depth: number, what: string): void {
  if (!isIndexDepthAllowed(depth)) {
    throw new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read ${what}: indexes nest deeper than ${MAX_INDEX_DEPTH}`,
    );
  }
}

/** How `followPlatform` reads a source's chain of indexes. */
export interface PlatformPath<N> {
  /** Whether a node is an index (else it is the manifest sought). */
  isIndex(node: N): boolean;
  /** An index node's entries, read and parsed. */
  entries(node: N): Promise<readonly unknown[]>;
  /** The node an entry names (read and checked against it). */
  child(entry: Descriptor): Promise<N>;
}

/**
 * The one walk from an image reference to one platform's manifest (after
 * go-containerregistry's `imageForPlatform`): from `start`, while it is an
 * index, the entry for `wanted` is chosen (the one platform rule,
 * `choosePlatform`) and followed, under the one depth rule. Returns the
 * manifest's node and the platform of the entry that named it, if any.
 *
 * @example
 * ```ts
 * import { followPlatform, type PlatformPath } from "./index_walk.ts";
 * import type { Descriptor } from "./image.ts";
 * declare const top: Descriptor, path: PlatformPath<Descriptor>;
 * const { node, platform } = await followPlatform(top, "linux/arm64", "app", path);
 * ```
 */
export async function followPlatform<N>(
  start: N,
  wanted: string,
  what: string,
  path: PlatformPath<N>,
): Promise<{ node: N; platform: Platform | undefined }> {
  let node = start;
  let platform: Platform | undefined;
  for (let depth = 1; path.isIndex(node); depth++) {
    assertIndexDepth(depth, what);
    const entry = choosePlatform(await path.entries(node), wanted, what);
    platform = entry.platform;
    node = await path.child(entry);
  }
  return { node, platform };
}

/** An index as walked: its bytes, and each entry with its child. */
export interface WalkedIndex {
  /** The index. */
  index: ImageIndex;
  /** Its exact bytes. */
  rawIndex: Uint8Array;
  /** Its entries in order, each with what it names. */
  entries: WalkedEntry[];
}

/**
 * One entry of a walked index. Entries naming the same child share one
 * object: the walk gives a graph, each child in it once.
 */
export type WalkedEntry =
  | { kind: "index"; descriptor: Descriptor; index: WalkedIndex }
  | { kind: "image"; descriptor: Descriptor; image: Image }
  | { kind: "absent"; descriptor: Descriptor; image?: undefined };

/** How `walkIndex` reads what it walks. */
export interface WalkOptions {
  /** What error messages call the index, e.g. `index of "app:v1"`. */
  what: string;
  /**
   * An index's entries from its bytes.
   * @default {parseIndexManifest(bytes, what).manifests}
   */
  entries?: (rawIndex: Uint8Array) => Descriptor[];
}

/**
 * Walks an index and every index below it, asking `child()` once per
 * distinct child (by digest, and by what the entry makes of it: an index or
 * a manifest, an attestation or not, at which depth), checking each child's
 * bytes against the entry naming it (sha256, size), and the depth rule. A
 * child the source does not hold is `absent`.
 *
 * @example
 * ```ts
 * import { walkIndex } from "./index_walk.ts";
 * import type { ImageIndex } from "./image_index.ts";
 * declare const index: ImageIndex;
 * const walked = await walkIndex(index, { what: 'index of "app:v1"' });
 * walked.entries.map((entry) => entry.kind);
 * ```
 */
export async function walkIndex(
  root: ImageIndex,
  options: WalkOptions,
): Promise<WalkedIndex> {
  const { what } = options;
  const entriesOf = options.entries ??
    ((raw: Uint8Array) => parseIndexManifest(raw, what).manifests);
  // The visited set: each distinct child's visit, begun once.
  const visited = new Map<string, Promise<Visited>>();

  const walk = async (
    index: ImageIndex,
    rawIndex: Uint8Array,
    depth: number,
  ): Promise<WalkedIndex> => {
    assertIndexDepth(depth, what);
    const descriptors = entriesOf(rawIndex);
    const children = await Promise.all(descriptors.map((descriptor) => {
      const key = [
        descriptor.digest,
        isIndexMediaType(descriptor.mediaType),
        isAttestation(descriptor.platform),
        depth,
      ].join(" ");
      let child = visited.get(key);
      if (!child) {
        child = visit(index, descriptor, depth);
        visited.set(key, child);
      }
      return child;
    }));
    const entries = descriptors.map((descriptor, i): WalkedEntry => {
      const child = children[i];
      // Read once, but the size of every entry naming it is checked.
      if (child.kind !== "absent" && child.size !== descriptor.size) {
        throw new DockerSaveError(
          "SIZE_MISMATCH",
          `Cannot verify ${what}: child ${descriptor.digest} has ${child.size} bytes, expected ${descriptor.size}`,
        );
      }
      return child.kind === "index"
        ? { kind: "index", descriptor, index: child.index }
        : child.kind === "image"
        ? { kind: "image", descriptor, image: child.image }
        : { kind: "absent", descriptor };
    });
    return { index, rawIndex, entries };
  };

  const visit = async (
    parent: ImageIndex,
    descriptor: Descriptor,
    depth: number,
  ): Promise<Visited> => {
    assertSha256Digest(descriptor.digest, what);
    const child = await parent.child(descriptor);
    if (!child) return { kind: "absent" };
    if (isImageIndex(child)) {
      const raw = await child.rawIndex();
      await assertBytesMatch(raw, descriptor, what);
      const index = await walk(child, raw, depth + 1);
      return { kind: "index", index, size: raw.byteLength };
    }
    const raw = await child.rawManifest();
    await assertBytesMatch(raw, descriptor, what);
    return { kind: "image", image: child, size: raw.byteLength };
  };

  return await walk(root, await root.rawIndex(), 1);
}

// A child once visited, with its byte count.
type Visited =
  | { kind: "index"; index: WalkedIndex; size: number }
  | { kind: "image"; image: Image; size: number }
  | { kind: "absent" };

/** An entry of a walked index, or of one derived from it (stages 1, 2). */
export interface GraphEntry {
  /** `"index"` for a nested index; `"image"` for an image. */
  kind: string;
  /** What names the child. */
  descriptor: Descriptor;
  /** The nested index, for an `"index"` entry. */
  index?: { entries: readonly GraphEntry[] };
}

/**
 * Every image entry of a walked index (or of one derived from it), nested
 * ones included, in index order, each image (by digest) once and each
 * nested index visited once.
 *
 * @example
 * ```ts
 * import { imageEntries, type WalkedIndex } from "./index_walk.ts";
 * declare const walked: WalkedIndex;
 * imageEntries(walked).map((entry) => entry.descriptor.platform);
 * ```
 */
export function imageEntries<E extends GraphEntry>(
  root: { entries: readonly E[] },
): E[] {
  const found: E[] = [];
  const images = new Set<string>();
  const indexes = new Set<object>();
  const visit = (index: { entries: readonly E[] }) => {
    if (indexes.has(index)) return;
    indexes.add(index);
    for (const entry of index.entries) {
      if (entry.kind === "index" && entry.index) {
        visit(entry.index as { entries: readonly E[] });
      } else if (
        entry.kind === "image" && !images.has(entry.descriptor.digest)
      ) {
        images.add(entry.descriptor.digest);
        found.push(entry);
      }
    }
  };
  visit(root);
  return found;
}

/**
 * Checks that bytes are what a descriptor names: the same sha256, the same
 * size (`DIGEST_MISMATCH`, `SIZE_MISMATCH`).
 *
 * @example
 * ```ts
 * import { assertBytesMatch } from "./index_walk.ts";
 * import type { Descriptor } from "./image.ts";
 * declare const bytes: Uint8Array, entry: Descriptor;
 * await assertBytesMatch(bytes, entry, 'index of "app:v1"');
 * ```
 */
export async function assertBytesMatch(
  bytes: Uint8Array,
  entry: Descriptor,
  what: string,
): Promise<void> {
  const digest = `sha256:${await sha256Hex(bytes)}`;
  if (digest !== entry.digest) {
    throw new DockerSaveError(
      "DIGEST_MISMATCH",
      `Cannot verify ${what}: a child hashes to ${digest}, expected ${entry.digest}`,
    );
  }
  if (bytes.byteLength !== entry.size) {
    throw new DockerSaveError(
      "SIZE_MISMATCH",
      `Cannot verify ${what}: child ${entry.digest} has ${bytes.byteLength} bytes, expected ${entry.size}`,
    );
  }
}
