/**
 * Stage 2 of `save()`: the v2.2 → v1 conversion (docs/FORMAT.md, "v1
 * ids"). Each history entry becomes a v1 layer whose id chains the layer
 * digest to its parent's id with `crypto.subtle` SHA-256.
 *
 * @module
 */

import { concatBytes } from "../util/streams.ts";
import { hexOf, sha256Hex } from "../model/digest.ts";
import { DockerSaveError } from "../model/errors.ts";
import type { Descriptor } from "../model/image.ts";
import { hasV1Form, type V1Form } from "../model/v1_form.ts";
import { dumpJson, isJsonObject, type JsonObject } from "../model/json.ts";
import type { DigestedImage } from "./config_digest.ts";
import type {
  DigestedEntry,
  DigestedIndex,
  DigestedItem,
} from "./config_digest.ts";

// The digest the reference gives an empty layer: gzip of an empty 1024-byte tar.
const EMPTY_LAYER_DIGEST =
  "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

/** One v1 layer of an image's ancestry. */
export interface V1Layer {
  /** The v1 id (64 hex). */
  id: string;
  /** The v1 json, as the reference writes it. */
  json: string | Uint8Array;
  /** Whether the history entry was empty: no layer.tar is written for it. */
  throwaway: boolean;
  /** The manifest layer behind it; `undefined` when throwaway. */
  layer: Descriptor | undefined;
  /** That layer's diff_id; `undefined` when throwaway. */
  diffId: string | undefined;
}

/** An index after stage 2: every image child converted. */
export type ConvertedIndex = DigestedIndex<ConvertedImage>;

/** What stage 2 gives and stage 3 takes: an image, or an index. */
export type SaveItem = ConvertedImage | ConvertedIndex;

// An index with each image child (nested ones too) given its v1 ancestry.
async function convertIndex(
  index: DigestedIndex,
): Promise<ConvertedIndex> {
  // Each index and image converted once: a child many entries name is
  // one object, and stays one.
  const converted = new Map<object, Promise<object>>();
  const once = <T extends object>(from: object, convert: () => Promise<T>) => {
    let to = converted.get(from);
    if (!to) {
      to = convert();
      converted.set(from, to);
    }
    return to as Promise<T>;
  };
  const convert = async (index: DigestedIndex): Promise<ConvertedIndex> => {
    const entries: DigestedEntry<ConvertedImage>[] = [];
    for (const entry of index.entries) {
      if (entry.kind === "image") {
        const image = await once(entry.image, () => convertImage(entry.image));
        entries.push({ ...entry, image });
      } else if (entry.kind === "index") {
        const nested = await once(entry.index, () => convert(entry.index));
        entries.push({ ...entry, index: nested });
      } else entries.push(entry);
    }
    return { ...index, entries };
  };
  return await convert(index);
}

async function convertImage(image: DigestedImage): Promise<ConvertedImage> {
  const ancestry = await v1Ancestry(image);
  return { ...image, ancestry, topId: ancestry[0].id };
}

/** An image after stage 2. */
export interface ConvertedImage extends DigestedImage {
  /** The v1 ancestry, newest (top) first. */
  ancestry: V1Layer[];
  /** The id `repositories` names: the top of the ancestry. */
  topId: string;
}

const TOP_KEYS = [
  "architecture",
  "container",
  "docker_version",
  "os",
  "config",
  "container_config",
  "created",
];
const HISTORY_KEYS = ["created", "comment", "author"];

// The v1 ancestry of an image, newest first. History entries with the key
// `empty_layer` are empty. Layers without a history entry (no history, or
// fewer non-empty entries than layers) are treated as non-empty `{}` entries
// after the last one, where the reference crashes or drops them.
async function v1Ancestry(image: DigestedImage): Promise<V1Layer[]> {
  const { config, manifest, diffIds, tag } = image;
  const history = historyOf(image);
  const layers: V1Layer[] = [];
  const encoder = new TextEncoder();
  let parent = "";
  let k = 0;
  for (const [i, entry] of history.entries()) {
    const throwaway = Object.hasOwn(entry, "empty_layer");
    const layer = throwaway ? undefined : manifest.layers[k];
    const diffId = throwaway ? undefined : diffIds[k];
    if (!throwaway) k++;
    const hex = hexOf(layer?.digest ?? EMPTY_LAYER_DIGEST);
    const isTop = i === history.length - 1;
    const id = isTop
      ? await sha256Hex(
        concatBytes([encoder.encode(`${hex} ${parent} `), image.configBytes]),
      )
      : await sha256Hex(encoder.encode(`${hex} ${parent}`));
    const json: JsonObject = { id };
    if (parent) json.parent = parent;
    if (throwaway) json.throwaway = true;
    if (isTop) {
      for (const key of TOP_KEYS) {
        if (Object.hasOwn(config, key)) json[key] = config[key];
      }
    } else {
      if (Object.hasOwn(entry, "created_by")) {
        json.container_config = { Cmd: [entry.created_by] };
      }
      for (const key of HISTORY_KEYS) {
        if (Object.hasOwn(entry, key)) json[key] = entry[key];
      }
    }
    layers.push({ id, json: dumpJson(json), throwaway, layer, diffId });
    parent = id;
  }
  if (k !== manifest.layers.length) {
    throw new DockerSaveError(
      "LAYER_COUNT_MISMATCH",
      `Cannot convert "${tag}": history has ${k} non-empty entries but the manifest has ${manifest.layers.length} layers`,
    );
  }
  return dedupeById(layers.reverse());
}

/**
 * Stage 2 as a Web Streams transform: digested images and indexes in, each
 * image (an index's children too) with its v1 ancestry out.
 *
 * @example
 * ```ts
 * import { V1Stream } from "./v1.ts";
 * import type { DigestedItem } from "./config_digest.ts";
 * declare const digested: ReadableStream<DigestedItem>;
 * const converted = digested.pipeThrough(new V1Stream());
 * ```
 */
export class V1Stream extends TransformStream<DigestedItem, SaveItem> {
  constructor() {
    super({
      transform: async (item, controller) => {
        if (item.kind === "index") {
          controller.enqueue(await convertIndex(item));
          return;
        }
        const form = hasV1Form(item.image)
          ? await item.image.v1Form()
          : undefined;
        controller.enqueue(
          form
            ? { ...item, ...fromV1Form(form, item) }
            : await convertImage(item),
        );
      },
    });
  }
}

// An existing v1 form is kept as it is (the reference's tag_to_v1_image),
// once it is checked: its directories, base first, are the manifest's
// layers with the config's diff_ids, so each id's layer.tar is the layer
// this image's config names (stage 4 then hashes it against that diff_id).
function fromV1Form(
  form: V1Form,
  image: DigestedImage,
): { ancestry: V1Layer[]; topId: string } {
  const base = [...form.layers].reverse();
  const { layers } = image.manifest;
  const mismatch = base.length !== layers.length ||
    base.some((v1, i) =>
      v1.layer.digest !== layers[i].digest || v1.diffId !== image.diffIds[i]
    );
  if (mismatch) {
    throw new DockerSaveError(
      "V1_ID_CONFLICT",
      `Cannot keep the v1 ids of "${image.tag}": its layer directories are not the layers its config names`,
    );
  }
  return {
    topId: form.topId,
    ancestry: form.layers.map((layer) => ({ ...layer, throwaway: false })),
  };
}

function historyOf(image: DigestedImage): JsonObject[] {
  const { config, manifest, tag } = image;
  const history = config.history ?? [];
  if (!Array.isArray(history) || !history.every(isJsonObject)) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot read config of "${tag}": history is not a list of objects`,
    );
  }
  const nonEmpty =
    history.filter((entry) => !Object.hasOwn(entry, "empty_layer")).length;
  const missing = Math.max(0, manifest.layers.length - nonEmpty);
  const padded = [...history, ...Array.from({ length: missing }, () => ({}))];
  if (padded.length === 0) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot convert "${tag}": it has neither layers nor history`,
    );
  }
  return padded;
}

// The reference keeps the first (newest) of two entries with the same id.
function dedupeById(layers: V1Layer[]): V1Layer[] {
  const seen = new Set<string>();
  return layers.filter((layer) => !seen.has(layer.id) && seen.add(layer.id));
}
