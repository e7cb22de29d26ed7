/**
 * Stage 3 of `save()`: the tarball's members in the reference's order
 * (docs/FORMAT.md, "Members"), from all converted images. Small members carry their
 * bytes; layer members carry what is needed to open them later.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import { dumpJson } from "../util/json.ts";
import { repoTagOf } from "../model/tag.ts";
import { manifestEntryOf, repositoriesOf } from "./docker_json.ts";
import { bytesEntry, type PlannedEntry, textEntry } from "./entries.ts";
import type { SaveSettings } from "./options.ts";
import { imageEntries, planOciEntries, type SaveItem } from "./plan_oci.ts";
import { formatPlatform } from "../model/platform.ts";
import { assertOneLayerPerV1Id, type ConvertedImage } from "./v1.ts";

const VERSION = new TextEncoder().encode("1.0");

/**
 * All members of the reference's format for the given images, in order:
 * each config, the v1 layer directories (each v1 id once, throwaway ones
 * skipped), `repositories`, and `manifest.json`.
 *
 * @example
 * ```ts
 * import { planEntries } from "./plan.ts";
 * import { isDeferredEntry } from "./entries.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const images: ConvertedImage[];
 * for (const entry of planEntries(images)) {
 *   if (!isDeferredEntry(entry)) console.log(entry.name);
 * }
 * ```
 */
export function* planEntries(
  images: readonly ConvertedImage[],
): Generator<PlannedEntry> {
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
 * import { assertOneLayerPerV1Id, type ConvertedImage } from "./v1.ts";
 * declare const converted: ReadableStream<ConvertedImage>;
 * import { resolveOptions } from "./options.ts";
 * const settings = resolveOptions({ format: "oci" });
 * const members = converted.pipeThrough(new PlanStream(settings));
 * ```
 */
export class PlanStream extends TransformStream<SaveItem, PlannedEntry> {
  /** @param settings the save's settings (format, layer mode) */
  constructor(settings: SaveSettings) {
    const items: SaveItem[] = [];
    super({
      transform: (item) => {
        items.push(item);
      },
      flush: (controller) => {
        if (items.length === 0) {
          throw new DockerSaveError(
            "EMPTY_INPUT",
            "Cannot save: no images given",
          );
        }
        assertUniqueRepoTags(items);
        let entries: Iterable<PlannedEntry>;
        if (settings.format === "docker") {
          const images = items.map(onePlatform);
          assertOneLayerPerV1Id(images);
          entries = planEntries(images);
        } else {
          entries = planOciEntries(items, settings);
        }
        for (const entry of entries) controller.enqueue(entry);
      },
    });
  }
}

// The docker format holds one platform per tag: an index of one image is
// that image; of more, it is refused before any byte is written.
function onePlatform(item: SaveItem): ConvertedImage {
  if (item.kind === "image") return item;
  const entries = imageEntries(item);
  if (entries.length !== 1) {
    throw new DockerSaveError(
      "UNSUPPORTED_FORMAT",
      `Cannot save "${item.tag}" in the docker format: it has ${entries.length} platforms (${
        entries.map((entry) => formatPlatform(entry.descriptor.platform))
          .join(", ")
      }) and that format holds one per tag; choose one platform, or use the oci or docker+oci format`,
    );
  }
  return { ...entries[0].image, tag: item.tag, parsedTag: item.parsedTag };
}

function assertUniqueRepoTags(images: readonly SaveItem[]): void {
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
