/**
 * Stage 3 of `save()`: the tarball's members in the reference's order
 * (docs/FORMAT.md, "Members"), from all converted images. Small members carry their
 * bytes; layer members carry what is needed to open them later.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import { dumpJson } from "../model/json.ts";
import { repoTagOf } from "../model/tag.ts";
import { manifestEntryOf, repositoriesOf } from "./docker_json.ts";
import { bytesEntry, type PlannedEntry, textEntry } from "./entries.ts";
import type { SaveSettings } from "./options.ts";
import { OciPlanner } from "./plan_oci.ts";
import { formatPlatform } from "../model/platform.ts";
import type { ConvertedImage, SaveItem } from "./v1.ts";
import type { Descriptor } from "../model/image.ts";
import { imageEntries } from "../model/index_walk.ts";

const VERSION = new TextEncoder().encode("1.0");

/**
 * Stage 3 as a Web Streams transform: converted items in, the tarball's
 * members out, in the order the format lays them out. A member flows out as
 * soon as its place is known: each item's config when the item arrives
 * (configs come first in every format); what follows every config (layers,
 * manifests, indexes, `repositories`, `manifest.json`, `index.json`) when
 * the input ends.
 *
 * @example
 * ```ts
 * import { PlanStream } from "./plan.ts";
 * import { resolveOptions } from "./options.ts";
 * import type { SaveItem } from "./v1.ts";
 * declare const converted: ReadableStream<SaveItem>;
 * const settings = resolveOptions({ format: "oci" });
 * const members = converted.pipeThrough(new PlanStream(settings));
 * ```
 */
export class PlanStream extends TransformStream<SaveItem, PlannedEntry> {
  /** @param settings the save's settings (format, layer mode) */
  constructor(settings: SaveSettings) {
    const planner: Planner = settings.format === "docker"
      ? new DockerPlanner()
      : new OciPlanner(settings);
    const repoTags = new Set<string>();
    super({
      transform: (item, controller) => {
        const repoTag = repoTagOf(item.tag);
        if (repoTags.has(repoTag)) {
          throw new DockerSaveError(
            "BAD_TAG",
            `Cannot save: tag "${repoTag}" is given twice`,
          );
        }
        repoTags.add(repoTag);
        for (const entry of planner.add(item)) controller.enqueue(entry);
      },
      flush: (controller) => {
        if (repoTags.size === 0) {
          throw new DockerSaveError(
            "EMPTY_INPUT",
            "Cannot save: no images given",
          );
        }
        for (const entry of planner.finish()) controller.enqueue(entry);
      },
    });
  }
}

// Places the members of one format: some as each item comes, the rest at
// the end.
interface Planner {
  add(item: SaveItem): Iterable<PlannedEntry>;
  finish(): Iterable<PlannedEntry>;
}

// The reference's format: each config (once per pair, as the reference
// writes it), then the v1 layer directories (each v1 id once, throwaway
// ones skipped), `repositories`, and `manifest.json`.
class DockerPlanner implements Planner {
  #images: ConvertedImage[] = [];

  *add(item: SaveItem): Generator<PlannedEntry> {
    const image = onePlatform(item);
    this.#images.push(image);
    yield bytesEntry(`${image.configHex}.json`, image.configBytes);
  }

  *finish(): Generator<PlannedEntry> {
    const images = this.#images;
    assertOneLayerPerV1Id(images);
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
}

// The docker format holds one platform per tag: an index of one image is
// that image; of more, it is refused before any byte is written.
function onePlatform(item: SaveItem): ConvertedImage {
  if (item.kind === "image") return item;
  const entries = imageEntries(item) as {
    descriptor: Descriptor;
    image: ConvertedImage;
  }[];
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

// No v1 id may name two different layers across the images saved
// together: the tarball holds one directory per id, so a second layer under
// the same id would be silently replaced by the first.
function assertOneLayerPerV1Id(
  images: readonly ConvertedImage[],
): void {
  const seen = new Map<string, { diffId: string; tag: string }>();
  for (const image of images) {
    for (const v1 of image.ancestry) {
      if (v1.throwaway) continue;
      const first = seen.get(v1.id);
      if (!first) {
        seen.set(v1.id, { diffId: v1.diffId!, tag: image.tag });
      } else if (first.diffId !== v1.diffId) {
        throw new DockerSaveError(
          "V1_ID_CONFLICT",
          `Cannot save "${image.tag}": v1 id ${v1.id} holds layer ${v1.diffId} here but ${first.diffId} in "${first.tag}"`,
        );
      }
    }
  }
}
