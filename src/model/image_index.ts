/**
 * An image index (a multi-platform image), after go-containerregistry's
 * `v1.ImageIndex`: the index's exact bytes, parsed, and each entry's child
 * opened on demand (an image, or a nested index). `save()` takes one in place
 * of an image and writes it, with every child, into the `oci` and
 * `docker+oci` formats.
 *
 * @module
 */

import { sha256Hex } from "./digest.ts";
import { DockerSaveError } from "./errors.ts";
import {
  configPlatform,
  formatPlatform,
  parsePlatform,
  platformMatches,
} from "./platform.ts";
import { untrustedText } from "../util/untrusted_text.ts";
import {
  type Descriptor,
  type Image,
  MEDIA_TYPES,
  type Platform,
} from "./image.ts";

/** An OCI image index or a Docker manifest list, parsed. */
export interface IndexManifest {
  /** Always 2. */
  schemaVersion: number;
  /** The OCI index or Docker manifest list media type; OCI allows none. */
  mediaType?: string;
  /** The children, each with a platform where it is an image. */
  manifests: Descriptor[];
  /** Free-form annotations. */
  annotations?: Record<string, string>;
}

/**
 * A multi-platform image. `child` may be called more than once; it answers
 * `undefined` for an entry whose child the source does not hold (what a
 * containerd-store `docker save` writes for platforms it did not pull).
 *
 * @example A minimal index over images held in memory
 * ```ts
 * import type { ImageIndex, IndexManifest } from "./image_index.ts";
 * import type { Image } from "./image.ts";
 * declare const raw: Uint8Array, parsed: IndexManifest;
 * declare const children: Map<string, Image>;
 * const index: ImageIndex = {
 *   rawIndex: async () => raw,
 *   index: async () => parsed,
 *   child: async (entry) => children.get(entry.digest),
 * };
 * ```
 */
export interface ImageIndex {
  /** The index's exact bytes. */
  rawIndex(): Promise<Uint8Array>;
  /** The index, parsed. */
  index(): Promise<IndexManifest>;
  /** The image or nested index an entry names; `undefined` when absent. */
  child(entry: Descriptor): Promise<Image | ImageIndex | undefined>;
}

/**
 * Whether a save input is an image index rather than an image.
 *
 * @example
 * ```ts
 * import { isImageIndex } from "./image_index.ts";
 * import type { ImageIndex } from "./image_index.ts";
 * import type { Image } from "./image.ts";
 * declare const input: Image | ImageIndex;
 * if (isImageIndex(input)) console.log((await input.index()).manifests.length);
 * ```
 */
export function isImageIndex(value: Image | ImageIndex): value is ImageIndex {
  return typeof (value as Partial<ImageIndex>).rawIndex === "function";
}

/** One child of an index built with `buildIndex`. */
export interface IndexChild {
  /** The image, or a nested index. */
  image: Image | ImageIndex;
  /** Its platform (images), as the entry says it. */
  platform?: Platform;
  /** The entry's annotations. */
  annotations?: Record<string, string>;
}

/**
 * An OCI image index over the given children, in order: each entry's
 * digest, size and media type are computed from the child's bytes.
 *
 * @example Two platforms of one application
 * ```ts
 * import { buildIndex } from "./image_index.ts";
 * import type { Image } from "./image.ts";
 * declare const amd64: Image, arm64: Image;
 * const index = await buildIndex([
 *   { image: amd64, platform: { os: "linux", architecture: "amd64" } },
 *   { image: arm64, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
 * ]);
 * ```
 */
export async function buildIndex(
  children: readonly IndexChild[],
): Promise<ImageIndex> {
  const byDigest = new Map<string, Image | ImageIndex>();
  const manifests: Descriptor[] = [];
  for (const { image, platform, annotations } of children) {
    const nested = isImageIndex(image);
    const bytes = nested ? await image.rawIndex() : await image.rawManifest();
    const mediaType = nested
      ? (await image.index()).mediaType ?? MEDIA_TYPES.ociIndex
      : (await image.manifest()).mediaType ?? MEDIA_TYPES.ociManifest;
    const digest = `sha256:${await sha256Hex(bytes)}`;
    byDigest.set(digest, image);
    manifests.push({
      mediaType,
      digest,
      size: bytes.byteLength,
      ...(platform ? { platform } : {}),
      ...(annotations ? { annotations } : {}),
    });
  }
  return indexOver(
    { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests },
    (entry) => Promise.resolve(byDigest.get(entry.digest)),
  );
}

/**
 * An index whose bytes are `JSON.stringify(value)`, its children opened by
 * `child`: a new index, e.g. a subset of another one's entries.
 *
 * @example Keep one entry of an index
 * ```ts
 * import { indexOver, type ImageIndex } from "./image_index.ts";
 * declare const source: ImageIndex;
 * const parsed = await source.index();
 * const first = indexOver(
 *   { ...parsed, manifests: parsed.manifests.slice(0, 1) },
 *   (entry) => source.child(entry),
 * );
 * ```
 */
export function indexOver(
  value: IndexManifest,
  child: ImageIndex["child"],
): ImageIndex {
  const raw = new TextEncoder().encode(JSON.stringify(value));
  return {
    rawIndex: () => Promise.resolve(raw),
    index: () => Promise.resolve(structuredClone(value)),
    child,
  };
}

/**
 * Which platforms of an index to save: `"all"` (every child must be present;
 * the index is kept byte for byte), `"available"` (the children the source
 * holds), or a list of `os/arch[/variant]` (those; attestations, whose
 * platform is `unknown/unknown`, are dropped). A subset is a new index, with
 * a new digest.
 */
export type PlatformSelection = "all" | "available" | readonly string[];

/**
 * The index to save for a selection of its platforms. Given an image (what
 * `fromRegistryIndex()` and the other `*Index` sources return for an entry
 * of one platform), the image itself: for `"all"` and `"available"`, and for
 * a list when its config's platform matches every platform listed.
 * Throws `DockerSaveError` `PLATFORM_NOT_FOUND` naming what is missing.
 *
 * @example Two platforms of a multi-platform image
 * ```ts
 * import { selectPlatforms, type ImageIndex } from "./image_index.ts";
 * declare const index: ImageIndex;
 * const two = await selectPlatforms(index, ["linux/amd64", "linux/arm64"]);
 * ```
 */
export async function selectPlatforms(
  index: ImageIndex,
  selection: PlatformSelection,
): Promise<ImageIndex>;
/**
 * An image stands for an index of its one platform (see the overload above).
 *
 * @example Whatever a registry holds for a tag
 * ```ts
 * import { fromRegistryIndex, selectPlatforms } from "../../mod.ts";
 * const app = await fromRegistryIndex("ghcr.io/org/app:1.2");
 * const amd64 = await selectPlatforms(app, ["linux/amd64"]);
 * ```
 */
export async function selectPlatforms(
  source: Image | ImageIndex,
  selection: PlatformSelection,
): Promise<Image | ImageIndex>;
export async function selectPlatforms(
  source: Image | ImageIndex,
  selection: PlatformSelection,
): Promise<Image | ImageIndex> {
  if (!isImageIndex(source)) return await selectFromImage(source, selection);
  const index = source;
  const parsed = await index.index();
  const manifests = Array.isArray(parsed?.manifests) ? parsed.manifests : [];
  // Each child asked for once, however many entries name it.
  const asked = new Map<string, Promise<boolean>>();
  const present = await Promise.all(manifests.map((entry) => {
    const key = JSON.stringify([entry.digest, entry.mediaType, entry.platform]);
    if (!asked.has(key)) {
      asked.set(key, index.child(entry).then((child) => child !== undefined));
    }
    return asked.get(key)!;
  }));
  if (selection === "all") {
    const missing = manifests.filter((_, i) => !present[i]);
    if (missing.length > 0) {
      throw new DockerSaveError(
        "PLATFORM_NOT_FOUND",
        `Cannot save every platform: the source does not hold ${
          missing.map((entry) => formatPlatform(entry.platform)).join(", ")
        }; save the platforms present with --platform available`,
      );
    }
    return index;
  }
  let kept: Descriptor[];
  if (selection === "available") {
    kept = manifests.filter((_, i) => present[i]);
  } else {
    const wanted = selection.map(parsePlatform);
    kept = manifests.filter((entry) =>
      wanted.some((want) => platformMatches(entry.platform, want))
    );
    const unmatched = selection.filter((_, i) =>
      !kept.some((entry) => platformMatches(entry.platform, wanted[i]))
    );
    const absent = kept.filter((entry) => !present[manifests.indexOf(entry)]);
    if (unmatched.length > 0 || absent.length > 0) {
      throw new DockerSaveError(
        "PLATFORM_NOT_FOUND",
        `Cannot save platforms ${
          [...unmatched, ...absent.map((e) => formatPlatform(e.platform))]
            .join(", ")
        }: the index has ${
          manifests.map((entry) => formatPlatform(entry.platform)).join(", ")
        }${absent.length ? " (some not held by the source)" : ""}`,
      );
    }
  }
  if (kept.length === manifests.length) return index;
  return indexOver(
    { ...parsed, manifests: kept },
    (entry) => index.child(entry),
  );
}

// One image is an index of one platform: the one its config names.
async function selectFromImage(
  image: Image,
  selection: PlatformSelection,
): Promise<Image> {
  if (!Array.isArray(selection)) return image;
  const platform = configPlatform(await image.rawConfig());
  const missing = selection.filter((text) =>
    !platformMatches(platform, parsePlatform(text))
  );
  if (missing.length > 0) {
    throw new DockerSaveError(
      "PLATFORM_NOT_FOUND",
      `Cannot save platforms ${
        missing.map((text) => untrustedText(text)).join(", ")
      }: the image is not an index and has one platform, ${
        formatPlatform(platform)
      }`,
    );
  }
  return image;
}
