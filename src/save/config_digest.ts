/**
 * Stage 1 of `save()`: read each image's manifest and config, check them, and
 * digest the config bytes exactly as stored (`crypto.subtle`).
 *
 * @module
 */

import { sha256Hex } from "../model/digest.ts";
import { DockerSaveError } from "../model/errors.ts";
import type { Image, Manifest } from "../model/image.ts";
import {
  isJsonObject,
  type JsonObject,
  type JsonValue,
  parseJson,
} from "../util/json.ts";
import { assertValidManifest } from "../model/manifest.ts";
import { type ImageIndex, isImageIndex } from "../model/image_index.ts";
import { type DigestedIndex, digestIndex } from "./index_digest.ts";
import { type ParsedTag, parseTag } from "../model/tag.ts";

/** One `[tag, image]` pair after stage 1. */
export interface DigestedImage {
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

/**
 * The sha256 hex of config bytes, exactly as stored (never re-serialised).
 *
 * @example
 * ```ts
 * import { digestConfig } from "./config_digest.ts";
 * await digestConfig(new TextEncoder().encode("{}"));
 * // "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
 * ```
 */
export function digestConfig(bytes: Uint8Array): Promise<string> {
  return sha256Hex(bytes);
}

/**
 * Reads, checks and digests one pair: the tag parses, the manifest is a
 * saveable image manifest, the config matches its descriptor and is JSON with
 * one diff_id per layer.
 *
 * @example
 * ```ts
 * import { digestImage } from "./config_digest.ts";
 * import type { Image } from "../model/image.ts";
 * declare const image: Image;
 * const digested = await digestImage("app:v1", image);
 * ```
 */
export async function digestImage(
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
  const configHex = await digestConfig(configBytes);
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
  DigestedImage | DigestedIndex
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
