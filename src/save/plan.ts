/**
 * Stage 3 of `save()`: the tarball's members in the seed's order (FORMAT.md,
 * "Output members"), from all converted images. Small members carry their
 * bytes; layer members carry what is needed to open them later.
 *
 * @module
 */

import { DockerSaveError } from "../errors.ts";
import { type Descriptor, type Image, isForeignLayer } from "../image.ts";
import { dumpJson, type JsonValue, parseJson } from "../json.ts";
import { repositoryOf, repoTagOf } from "../tag.ts";
import type { TarEntry } from "./tar_writer.ts";
import type { ConvertedImage } from "./v1.ts";

/** A `<id>/layer.tar` member whose body and size are resolved later. */
export interface LayerEntry {
  /** Member name, `<v1 id>/layer.tar`. */
  name: string;
  /** The image to open the blob from. */
  image: Image;
  /** The layer's manifest descriptor. */
  layer: Descriptor;
  /** The layer's diff_id from the config. */
  diffId: string;
}

/** A member as planned: ready bytes, or a layer to open. */
export type PlannedEntry = TarEntry | LayerEntry;

const VERSION = new TextEncoder().encode("1.0");

/**
 * Whether a planned member is a layer still to be opened.
 *
 * @example
 * ```ts
 * import { isLayerEntry, type PlannedEntry } from "./plan.ts";
 * declare const entry: PlannedEntry;
 * if (isLayerEntry(entry)) console.log(entry.layer.digest);
 * ```
 */
export function isLayerEntry(entry: PlannedEntry): entry is LayerEntry {
  return "layer" in entry;
}

/**
 * All members for the given images, in order: each config, the v1 layer
 * directories (each v1 id once, throwaway ones skipped), `repositories`, and
 * `manifest.json`.
 *
 * @example
 * ```ts
 * import { planEntries } from "./plan.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const images: ConvertedImage[];
 * for (const entry of planEntries(images)) console.log(entry.name);
 * ```
 */
export function* planEntries(
  images: readonly ConvertedImage[],
): Generator<PlannedEntry> {
  if (images.length === 0) {
    throw new DockerSaveError("EMPTY_INPUT", "Cannot save: no images given");
  }
  assertUniqueRepoTags(images);
  for (const image of images) {
    yield bytesEntry(`${image.configHex}.json`, image.configBytes);
  }
  const written = new Set<string>();
  for (const image of images) {
    for (const v1 of image.ancestry) {
      if (v1.throwaway || written.has(v1.id)) continue;
      written.add(v1.id);
      yield bytesEntry(`${v1.id}/VERSION`, VERSION);
      yield {
        name: `${v1.id}/layer.tar`,
        image: image.image,
        layer: v1.layer!,
        diffId: v1.diffId!,
      };
      yield typeof v1.json === "string"
        ? textEntry(`${v1.id}/json`, v1.json)
        : bytesEntry(`${v1.id}/json`, v1.json);
    }
  }
  yield textEntry("repositories", dumpJson(repositoriesOf(images)));
  yield textEntry("manifest.json", dumpJson(images.map(manifestEntryOf)));
}

/**
 * Stage 3 as a Web Streams transform: it takes every converted image, then
 * emits all members at the end, since member order interleaves images.
 *
 * @example
 * ```ts
 * import { PlanStream } from "./plan.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const converted: ReadableStream<ConvertedImage>;
 * const members = converted.pipeThrough(new PlanStream());
 * ```
 */
export class PlanStream extends TransformStream<ConvertedImage, PlannedEntry> {
  constructor() {
    const images: ConvertedImage[] = [];
    super({
      transform: (image) => {
        images.push(image);
      },
      flush: (controller) => {
        for (const entry of planEntries(images)) controller.enqueue(entry);
      },
    });
  }
}

function repositoriesOf(images: readonly ConvertedImage[]): JsonValue {
  const repositories: { [repo: string]: { [tag: string]: JsonValue } } = {};
  for (const { parsedTag, topId } of images) {
    const repo = repositoryOf(parsedTag);
    repositories[repo] ??= {};
    repositories[repo][parsedTag.tag ?? "latest"] = topId;
  }
  return repositories;
}

function manifestEntryOf(image: ConvertedImage): JsonValue {
  const entry: { [key: string]: JsonValue } = {
    Config: `${image.configHex}.json`,
    Layers: image.ancestry.toReversed()
      .filter((v1) => !v1.throwaway)
      .map((v1) => `${v1.id}/layer.tar`),
    RepoTags: [repoTagOf(image.tag)],
  };
  const sources = layerSourcesOf(image);
  if (sources) entry.LayerSources = sources;
  return entry;
}

// Foreign layers' descriptors, unchanged: re-read from the manifest bytes so
// that every field keeps its JSON form.
function layerSourcesOf(image: ConvertedImage): JsonValue | undefined {
  const indexes = image.manifest.layers
    .map((layer, i) => isForeignLayer(layer.mediaType) ? i : -1)
    .filter((i) => i >= 0);
  if (indexes.length === 0) return undefined;
  const raw = parseJson(new TextDecoder().decode(image.rawManifest)) as {
    layers: JsonValue[];
  };
  const sources: { [diffId: string]: JsonValue } = {};
  for (const i of indexes) sources[image.diffIds[i]] = raw.layers[i];
  return sources;
}

function assertUniqueRepoTags(images: readonly ConvertedImage[]): void {
  const seen = new Set<string>();
  for (const { tag } of images) {
    const repoTag = repoTagOf(tag);
    if (seen.has(repoTag)) {
      throw new DockerSaveError(
        "BAD_TAG",
        `Cannot save: tag "${repoTag}" is given twice`,
      );
    }
    seen.add(repoTag);
  }
}

function bytesEntry(name: string, body: Uint8Array): TarEntry {
  return { name, size: body.byteLength, body };
}

function textEntry(name: string, text: string): TarEntry {
  return bytesEntry(name, new TextEncoder().encode(text));
}
