/**
 * Stage 1 of `save()`: read and check each input. An image's manifest and
 * config are checked and the config bytes digested exactly as stored
 * (`crypto.subtle`). An index is read with every child it names, each
 * checked against the descriptor naming it (sha256 and size of the exact
 * bytes), down to a bounded depth: an image child is digested as any image
 * is; a child that is not a saveable image (an attestation manifest, whose
 * layers are in-toto statements) is an artifact, copied blob for blob.
 *
 * @module
 */

import { assertSha256Digest, sha256Hex } from "../model/digest.ts";
import { DockerSaveError } from "../model/errors.ts";
import type { Descriptor, Image, Manifest } from "../model/image.ts";
import { type ImageIndex, isImageIndex } from "../model/image_index.ts";
import {
  imageOrArtifact,
  parseIndexManifest,
} from "../model/index_manifest.ts";
import {
  assertBytesMatch,
  type WalkedIndex,
  walkIndex,
} from "../model/index_walk.ts";
import {
  assertValidManifest,
  isIndexMediaType,
  isObject,
  parseJsonObject,
} from "../model/manifest.ts";
import { formatPlatform, isAttestation } from "../model/platform.ts";
import { type ParsedTag, parseTag } from "../model/tag.ts";
import {
  isJsonObject,
  type JsonObject,
  type JsonValue,
  parseJson,
} from "../model/json.ts";

/** One `[tag, image]` pair after stage 1. */
export interface DigestedImage {
  /** Marks an image among the items of a save (an index is `"index"`). */
  kind: "image";
  /** The tag as given. */
  tag: string;
  /** The tag, parsed. */
  parsedTag: ParsedTag;
  /** The image. */
  image: Image;
  /** Its manifest's exact bytes. */
  rawManifest: Uint8Array;
  /** Its manifest, checked. */
  manifest: Manifest;
  /** The config's exact bytes. */
  configBytes: Uint8Array;
  /** Lowercase hex sha256 of `configBytes`. */
  configHex: string;
  /** The config, parsed as Python's `json.loads` would. */
  config: JsonObject;
  /** `config.rootfs.diff_ids`, one per manifest layer. */
  diffIds: string[];
}

// Reads, checks and digests one pair: the tag parses, the manifest is a
// saveable image manifest, the config matches its descriptor and is JSON with
// one diff_id per layer.
async function digestImage(
  tag: string,
  image: Image,
): Promise<DigestedImage> {
  if (typeof tag !== "string") {
    throw new TypeError(`Cannot save: tag ${String(tag)} is not a string`);
  }
  const parsedTag = parseTag(tag);
  const [rawManifest, manifest, configBytes] = await Promise.all([
    image.rawManifest(),
    image.manifest(),
    image.rawConfig(),
  ]);
  assertValidManifest(manifest, `"${tag}"`);
  // The config bytes exactly as stored, never re-serialised.
  const configHex = await sha256Hex(configBytes);
  const expected = manifest.config;
  if (`sha256:${configHex}` !== expected.digest) {
    throw new DockerSaveError(
      "DIGEST_MISMATCH",
      `Cannot verify config of "${tag}": its bytes hash to sha256:${configHex}, expected ${expected.digest}`,
    );
  }
  if (configBytes.byteLength !== expected.size) {
    throw new DockerSaveError(
      "SIZE_MISMATCH",
      `Cannot verify config of "${tag}": it has ${configBytes.byteLength} bytes, expected ${expected.size}`,
    );
  }
  const config = parseConfig(tag, configBytes);
  const diffIds = readDiffIds(tag, config);
  if (diffIds.length !== manifest.layers.length) {
    throw new DockerSaveError(
      "LAYER_COUNT_MISMATCH",
      `Cannot save "${tag}": the manifest has ${manifest.layers.length} layers but rootfs.diff_ids has ${diffIds.length}`,
    );
  }
  return {
    kind: "image",
    tag,
    parsedTag,
    image,
    rawManifest,
    manifest,
    configBytes,
    configHex,
    config,
    diffIds,
  };
}

/**
 * Stage 1 as a Web Streams transform: `[tag, image]` pairs in, checked and
 * digested images (or indexes, with every child) out.
 *
 * @example
 * ```ts
 * import { ConfigDigestStream } from "./config_digest.ts";
 * import type { Image } from "../model/image.ts";
 * declare const pairs: ReadableStream<readonly [string, Image]>;
 * const digested = pairs.pipeThrough(new ConfigDigestStream());
 * ```
 */
export class ConfigDigestStream extends TransformStream<
  readonly [string, Image | ImageIndex],
  DigestedItem
> {
  constructor() {
    super({
      transform: async ([tag, image], controller) => {
        controller.enqueue(
          isImageIndex(image)
            ? await digestIndex(tag, image)
            : await digestImage(tag, image),
        );
      },
    });
  }
}

/** What stage 1 gives and stage 2 takes: an image, or an index. */
export type DigestedItem = DigestedImage | DigestedIndex;

/** A child that is not a saveable image, copied as its blobs. */
export interface DigestedArtifact {
  /** Where its blobs are opened from. */
  image: Image;
  /** Its manifest's exact bytes. */
  rawManifest: Uint8Array;
  /** Its config blob's exact bytes. */
  rawConfig: Uint8Array;
  /** Its config descriptor. */
  config: Descriptor;
  /** Its other blobs (layers), copied as stored. */
  blobs: Descriptor[];
}

/** One entry of an index after stage 1, with the descriptor naming it. */
export type DigestedEntry<I = DigestedImage> =
  | { kind: "image"; descriptor: Descriptor; image: I }
  | { kind: "index"; descriptor: Descriptor; index: DigestedIndex<I> }
  | { kind: "artifact"; descriptor: Descriptor; artifact: DigestedArtifact };

/** An index after stage 1. */
export interface DigestedIndex<I = DigestedImage> {
  /** Marks an index among the items of a save (an image is `"image"`). */
  kind: "index";
  /** The tag as given. */
  tag: string;
  /** The tag, parsed. */
  parsedTag: ParsedTag;
  /** The index's exact bytes. */
  rawIndex: Uint8Array;
  /** What names it: its media type, digest and size. */
  descriptor: Descriptor;
  /** Its entries in order, each read and checked. */
  entries: DigestedEntry<I>[];
}

// Reads and checks an index and all its children for `tag`.
async function digestIndex(
  tag: string,
  index: ImageIndex,
): Promise<DigestedIndex> {
  const parsedTag = parseTag(tag);
  const what = `index of "${tag}"`;
  // Each child read and checked once, however many paths lead to it.
  const walked = await walkIndex(index, {
    what,
    entries: (raw) => entriesOf(raw, what),
  });
  const { rawIndex } = walked;
  const descriptor: Descriptor = {
    mediaType: mediaTypeOf(rawIndex, `"${tag}"`),
    digest: `sha256:${await sha256Hex(rawIndex)}`,
    size: rawIndex.byteLength,
  };
  // Each walked index and image digested once: the graph stays a graph.
  const indexes = new Map<WalkedIndex, Promise<DigestedIndex>>();
  const images = [false, true].map(() => new Map<Image, Promise<Child>>());
  const digestChild = (image: Image, entry: Descriptor) => {
    const memo = images[Number(isAttestation(entry.platform))];
    let child = memo.get(image);
    if (!child) {
      child = childOf(tag, image, entry);
      memo.set(image, child);
    }
    return child;
  };
  const digest = (node: WalkedIndex, named: Descriptor) => {
    let digested = indexes.get(node);
    if (!digested) {
      digested = digestEntries(node, named);
      indexes.set(node, digested);
    }
    return digested;
  };
  const digestEntries = async (
    node: WalkedIndex,
    named: Descriptor,
  ): Promise<DigestedIndex> => {
    const missing = node.entries.filter((entry) => entry.kind === "absent");
    if (missing.length > 0) {
      throw new DockerSaveError(
        "PLATFORM_NOT_FOUND",
        `Cannot save "${tag}": its index names ${missing.length} of ${node.entries.length} children the source does not hold (${
          missing.map((entry) => formatPlatform(entry.descriptor.platform))
            .join(", ")
        }); save the platforms present with --platform available`,
      );
    }
    const entries: DigestedEntry[] = [];
    for (const entry of node.entries) {
      const { descriptor } = entry;
      if (entry.kind === "index") {
        const nested = await digest(entry.index, descriptor);
        entries.push({ kind: "index", descriptor, index: nested });
      } else if (entry.kind === "image") {
        entries.push({
          ...await digestChild(entry.image, descriptor),
          descriptor,
        });
      }
    }
    return {
      kind: "index",
      tag,
      parsedTag,
      rawIndex: node.rawIndex,
      descriptor: named,
      entries,
    };
  };
  return await digest(walked, descriptor);
}

// What an image child of an index is after stage 1, whichever entry names it.
type Child =
  | { kind: "image"; image: DigestedImage }
  | { kind: "artifact"; artifact: DigestedArtifact };

// An image child, or, when it is not one we can save (attestations, other
// artifacts), its blobs to copy as they are.
function childOf(
  tag: string,
  child: Image,
  entry: Descriptor,
): Promise<Child> {
  return imageOrArtifact<Child>(
    entry,
    async () => ({ kind: "image", image: await digestImage(tag, child) }),
    async () => ({ kind: "artifact", artifact: await artifactOf(tag, child) }),
  );
}

async function artifactOf(
  tag: string,
  image: Image,
): Promise<DigestedArtifact> {
  const what = `artifact in the index of "${tag}"`;
  const rawManifest = await image.rawManifest();
  const value = parseJsonObject(rawManifest, what);
  const config = descriptorOf(value.config, what);
  const layers = Array.isArray(value.layers) ? value.layers : [];
  const blobs = layers.map((layer) => descriptorOf(layer, what));
  const rawConfig = await image.rawConfig();
  await assertBytesMatch(rawConfig, config, what);
  return { image, rawManifest, rawConfig, config, blobs };
}

function descriptorOf(value: unknown, what: string): Descriptor {
  const d = value as Partial<Descriptor> | undefined;
  if (
    !isObject(value) || typeof d?.mediaType !== "string" ||
    !Number.isSafeInteger(d.size) || (d.size as number) < 0
  ) {
    throw new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read ${what}: a descriptor has no media type or size`,
    );
  }
  assertSha256Digest(d.digest, what);
  return { mediaType: d.mediaType, digest: d.digest!, size: d.size! };
}

// The entries as the index has them (platform, annotations), each checked
// as a descriptor whose bytes can be verified (sha256).
function entriesOf(rawIndex: Uint8Array, what: string): Descriptor[] {
  return parseIndexManifest(rawIndex, what).manifests.map((entry) => {
    const { mediaType, digest, size } = descriptorOf(entry, what);
    return { ...entry, mediaType, digest, size };
  });
}

function mediaTypeOf(rawIndex: Uint8Array, what: string): string {
  const value = parseJsonObject(rawIndex, `index of ${what}`);
  const mediaType = (value as { mediaType?: unknown })?.mediaType;
  if (mediaType !== undefined && !isIndexMediaType(mediaType)) {
    throw new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read index of ${what}: media type ${
        JSON.stringify(mediaType)
      } is not an index`,
    );
  }
  return typeof mediaType === "string"
    ? mediaType
    : "application/vnd.oci.image.index.v1+json";
}

function parseConfig(
  tag: string,
  bytes: Uint8Array,
): JsonObject {
  let config: JsonValue;
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
      .decode(bytes);
    config = parseJson(text);
  } catch (error) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot read config of "${tag}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!isJsonObject(config)) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot read config of "${tag}": it is not a JSON object`,
    );
  }
  return config;
}

function readDiffIds(
  tag: string,
  config: JsonObject,
): string[] {
  // Python's cfg.get('rootfs', {}).get('diff_ids', []): absent means none.
  const rootfs = config.rootfs ?? {};
  const diffIds = isJsonObject(rootfs) ? rootfs.diff_ids ?? [] : undefined;
  if (
    !Array.isArray(diffIds) || !diffIds.every((id) => typeof id === "string")
  ) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot read config of "${tag}": rootfs.diff_ids is not a list of digests`,
    );
  }
  return diffIds as string[];
}
