/**
 * The JSON files of docker's formats: `repositories` and the entries of
 * `manifest.json` (docs/FORMAT.md, "Tags" and "manifest.json").
 *
 * @module
 */

import { isForeignLayer } from "../model/image.ts";
import { type JsonValue, parseJson } from "../model/json.ts";
import { repositoryOf, repoTagOf } from "../model/tag.ts";
import type { ConvertedImage } from "./v1.ts";

/**
 * The `repositories` file's value: `{ repo: { tag: topId } }`.
 *
 * @example
 * ```ts
 * import { repositoriesOf } from "./docker_json.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const images: ConvertedImage[];
 * repositoriesOf(images);
 * ```
 */
export function repositoriesOf(images: readonly ConvertedImage[]): JsonValue {
  const repositories: { [repo: string]: { [tag: string]: JsonValue } } = {};
  for (const { parsedTag, topId } of images) {
    const repo = repositoryOf(parsedTag);
    repositories[repo] ??= {};
    repositories[repo][parsedTag.tag ?? "latest"] = topId;
  }
  return repositories;
}

/**
 * An image's entry in the reference's manifest.json: its config, its v1
 * layer directories oldest first (throwaway ones have none), its tag, and
 * `LayerSources` when it has foreign layers.
 *
 * @example
 * ```ts
 * import { manifestEntryOf } from "./docker_json.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const image: ConvertedImage;
 * manifestEntryOf(image);
 * ```
 */
export function manifestEntryOf(image: ConvertedImage): JsonValue {
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

/**
 * manifest.json's `LayerSources` for an image: its foreign and
 * non-distributable layers' descriptors by diff_id, unchanged; `undefined`
 * when it has none.
 *
 * @example
 * ```ts
 * import { layerSourcesOf } from "./docker_json.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const image: ConvertedImage;
 * layerSourcesOf(image);
 * ```
 */
export function layerSourcesOf(image: ConvertedImage): JsonValue | undefined {
  const indexes = image.manifest.layers
    .map((layer, i) => isForeignLayer(layer.mediaType) ? i : -1)
    .filter((i) => i >= 0);
  if (indexes.length === 0) return undefined;
  // Re-read from the manifest bytes so every field keeps its JSON form.
  const raw = parseJson(new TextDecoder().decode(image.rawManifest)) as {
    layers: JsonValue[];
  };
  const sources: { [diffId: string]: JsonValue } = {};
  for (const i of indexes) sources[image.diffIds[i]] = raw.layers[i];
  return sources;
}
