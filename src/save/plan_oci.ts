/**
 * Stage 3 for the OCI layouts: an OCI image layout tarball (`oci`), or one
 * that classic `docker load` and the containerd store both read
 * (`docker+oci`: the layout plus `manifest.json` and `repositories` pointing
 * into `blobs/sha256/`). Each blob is stored once.
 *
 * OCI media types are used throughout, as docker ≥ 25 writes them. With
 * uncompressed layers a layer blob is the layer tar, named by its diff_id;
 * with compressed layers it is the blob as stored, and an OCI manifest is
 * kept byte for byte.
 *
 * @module
 */

import { sha256Hex } from "../model/digest.ts";
import {
  type Descriptor,
  isForeignLayer,
  MEDIA_TYPES,
} from "../model/image.ts";
import { dumpJson, type JsonValue } from "../model/json.ts";
import {
  blobPath,
  CONTAINERD_NAME_ANNOTATION,
  containerdName,
  REF_NAME_ANNOTATION,
} from "../model/oci_layout_names.ts";
import { repoTagOf } from "../model/tag.ts";
import {
  bytesEntry,
  type LayerSizes,
  type PlannedEntry,
  textEntry,
} from "./entries.ts";
import { layerSourcesOf, repositoriesOf } from "./docker_json.ts";
import { DockerSaveError } from "../model/errors.ts";
import { parsePlatform, platformMatches } from "../model/platform.ts";
import { imageEntries } from "../model/index_walk.ts";
import type { DigestedArtifact } from "./config_digest.ts";
import type { SaveSettings } from "./options.ts";
import type { ConvertedImage, ConvertedIndex, SaveItem } from "./v1.ts";

const OCI_LAYER_TYPES: Record<string, string> = {
  [MEDIA_TYPES.dockerLayerGzip]: MEDIA_TYPES.ociLayerGzip,
  [MEDIA_TYPES.dockerLayerTar]: MEDIA_TYPES.ociLayerTar,
  [MEDIA_TYPES.dockerForeignLayerGzip]: MEDIA_TYPES.ociForeignLayerGzip,
};

/**
 * Stage 3's planner for the OCI layouts: fed each converted item in order
 * (`add`), it gives the members it can place at once (`oci-layout`, then
 * each image's config blob); `finish` gives the rest, which follow every
 * config: layer blobs, manifests, indexes (nested ones first), `index.json`
 * and, for `docker+oci`, `manifest.json` and `repositories`.
 *
 * An index is written with every child. Where no child's manifest changes
 * (compressed layers, nothing to drop), the index and every manifest are
 * kept byte for byte, so their digests are the source's; with uncompressed
 * layers the children's manifests are rewritten and so is the index.
 *
 * @example
 * ```ts
 * import { OciPlanner } from "./plan_oci.ts";
 * import { resolveOptions } from "./options.ts";
 * import type { SaveItem } from "./v1.ts";
 * declare const items: SaveItem[];
 * const planner = new OciPlanner(resolveOptions({ format: "docker+oci" }));
 * const entries = [...items.flatMap((item) => [...planner.add(item)]), ...planner.finish()];
 * ```
 */
export class OciPlanner {
  #compressed: boolean;
  #defaultPlatform: string;
  // docker+oci adds manifest.json and repositories for classic docker load.
  #docker: boolean;
  #items: SaveItem[] = [];
  #graph: Graph = {
    images: [],
    children: new Set(),
    artifacts: [],
    indexes: [],
    seen: new Set(),
  };
  #written = new Set<string>();

  /** @param settings the save's format, layer mode and default platform */
  constructor(
    settings: Pick<SaveSettings, "format" | "compressed" | "defaultPlatform">,
  ) {
    this.#compressed = settings.compressed;
    this.#defaultPlatform = settings.defaultPlatform;
    this.#docker = settings.format === "docker+oci";
  }

  /** The members an item lets be placed now: its images' config blobs. */
  *add(item: SaveItem): Generator<PlannedEntry> {
    if (this.#items.length === 0) {
      yield textEntry("oci-layout", '{"imageLayoutVersion": "1.0.0"}');
    }
    this.#items.push(item);
    for (const image of addToGraph(this.#graph, item)) {
      const name = blobPath(`sha256:${image.configHex}`);
      if (this.#once(name)) yield bytesEntry(name, image.configBytes);
    }
  }

  /** The members that follow every config, once every item is added. */
  *finish(): Generator<PlannedEntry> {
    const items = this.#items;
    const compressed = this.#compressed;
    const once = (name: string) => this.#once(name);
    const layerBlobName = (image: ConvertedImage, i: number) =>
      blobPath(
        compressed ? image.manifest.layers[i].digest : image.diffIds[i],
      );
    const { images, children, artifacts, indexes } = this.#graph;
    // What each manifest and index is written as, learnt as they are built.
    const built = new Map<object, Descriptor>();

    for (const artifact of artifacts) {
      const name = blobPath(artifact.config.digest);
      if (once(name)) yield bytesEntry(name, artifact.rawConfig);
    }
    for (const image of images) {
      for (const [i, layer] of image.manifest.layers.entries()) {
        const name = layerBlobName(image, i);
        if (once(name)) {
          yield { name, image: image.image, layer, diffId: image.diffIds[i] };
        }
      }
    }
    for (const artifact of artifacts) {
      for (const blob of artifact.blobs) {
        const name = blobPath(blob.digest);
        if (once(name)) {
          yield {
            name,
            image: artifact.image,
            layer: blob,
            diffId: blob.digest,
            asStored: true,
          };
        }
      }
    }
    for (const image of images) {
      yield {
        build: async (sizes) => {
          // An index child keeps its manifest when its blobs are unchanged.
          const bytes = children.has(image) && compressed &&
              !image.manifest.layers.some((layer) => layer.urls)
            ? image.rawManifest
            : manifestBytes(image, compressed, sizes);
          const descriptor = await descriptorOf(
            bytes,
            bytes === image.rawManifest
              ? image.manifest.mediaType ?? MEDIA_TYPES.ociManifest
              : MEDIA_TYPES.ociManifest,
          );
          built.set(image, descriptor);
          const name = blobPath(descriptor.digest);
          return once(name) ? bytesEntry(name, bytes) : undefined;
        },
      };
    }
    for (const artifact of artifacts) {
      yield {
        build: async () => {
          const { digest } = await descriptorOf(artifact.rawManifest, "");
          const name = blobPath(digest);
          return once(name)
            ? bytesEntry(name, artifact.rawManifest)
            : undefined;
        },
      };
    }
    // Nested indexes before the ones naming them.
    for (const index of indexes) {
      yield {
        build: async () => {
          const bytes = indexBytes(index, built);
          const descriptor = bytes === index.rawIndex
            ? index.descriptor
            : await descriptorOf(bytes, MEDIA_TYPES.ociIndex);
          built.set(index, descriptor);
          const name = blobPath(descriptor.digest);
          return once(name) ? bytesEntry(name, bytes) : undefined;
        },
      };
    }
    const tops = items.map((item) =>
      item.kind === "index" ? defaultImage(item, this.#defaultPlatform) : item
    );
    yield {
      build: () =>
        Promise.resolve(textEntry(
          "index.json",
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MEDIA_TYPES.ociIndex,
            manifests: items.map((item) => ({
              ...built.get(item)!,
              annotations: indexAnnotations(item),
            })),
          }),
        )),
    };
    if (this.#docker) {
      yield textEntry(
        "manifest.json",
        dumpJson(tops.map((image, i): JsonValue => {
          const entry: { [key: string]: JsonValue } = {
            Config: blobPath(`sha256:${image.configHex}`),
            Layers: image.manifest.layers.map((_, j) =>
              layerBlobName(image, j)
            ),
            RepoTags: [repoTagOf(items[i].tag)],
          };
          const sources = layerSourcesOf(image);
          if (sources) entry.LayerSources = sources;
          return entry;
        })),
      );
      yield textEntry(
        "repositories",
        dumpJson(repositoriesOf(tops.map((image, i) => ({
          ...image,
          tag: items[i].tag,
          parsedTag: items[i].parsedTag,
        })))),
      );
    }
  }

  #once(name: string): boolean {
    return !this.#written.has(name) && !!this.#written.add(name);
  }
}

// Every image, artifact and index of the save, each once (a child many
// entries name is one object); nested indexes before their parents.
// `children` are the images inside an index.
interface Graph {
  images: ConvertedImage[];
  children: Set<ConvertedImage>;
  artifacts: DigestedArtifact[];
  indexes: ConvertedIndex[];
  seen: Set<object>;
}

// Adds an item to the graph; returns the images it added, in order.
function addToGraph(graph: Graph, item: SaveItem): ConvertedImage[] {
  const { images, children, artifacts, indexes, seen } = graph;
  const added: ConvertedImage[] = [];
  const first = (value: object) => !seen.has(value) && !!seen.add(value);
  const visit = (index: ConvertedIndex) => {
    for (const entry of index.entries) {
      if (entry.kind === "image") {
        if (first(entry.image)) added.push(entry.image);
        children.add(entry.image);
      } else if (entry.kind === "index") {
        if (first(entry.index)) visit(entry.index);
      } else if (first(entry.artifact)) artifacts.push(entry.artifact);
    }
    indexes.push(index);
  };
  if (item.kind === "index") visit(item);
  else added.push(item);
  images.push(...added);
  return added;
}

// The index as written: its own bytes when every child is written as the
// source has it, else a new OCI index naming the children as written.
function indexBytes(
  index: ConvertedIndex,
  written: Map<object, Descriptor>,
): Uint8Array {
  const entries = index.entries.map((entry) => {
    const child = entry.kind === "image"
      ? written.get(entry.image)
      : entry.kind === "index"
      ? written.get(entry.index)
      : entry.descriptor;
    return { entry: entry.descriptor, child: child! };
  });
  if (entries.every(({ entry, child }) => entry.digest === child.digest)) {
    return index.rawIndex;
  }
  const value = JSON.parse(new TextDecoder().decode(index.rawIndex));
  return new TextEncoder().encode(JSON.stringify({
    ...value,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: entries.map(({ entry, child }) => ({
      ...entry,
      mediaType: child.mediaType,
      digest: child.digest,
      size: child.size,
    })),
  }));
}

// The image child of an index that classic loaders get (`manifest.json`):
// the one matching `platform` (default `linux/amd64`), else the first image.
function defaultImage(
  index: ConvertedIndex,
  platform = "linux/amd64",
): ConvertedImage {
  const candidates = imageEntries(index) as {
    descriptor: Descriptor;
    image: ConvertedImage;
  }[];
  if (candidates.length === 0) {
    throw new DockerSaveError(
      "PLATFORM_NOT_FOUND",
      `Cannot save "${index.tag}": its index holds no image`,
    );
  }
  const want = parsePlatform(platform);
  const chosen =
    candidates.find((entry) =>
      platformMatches(entry.descriptor.platform, want)
    ) ?? candidates[0];
  return chosen.image;
}

async function descriptorOf(
  bytes: Uint8Array,
  mediaType: string,
): Promise<Descriptor> {
  return {
    mediaType,
    digest: `sha256:${await sha256Hex(bytes)}`,
    size: bytes.byteLength,
  };
}

/**
 * The names an index entry carries, in both layouts (`oci` and `docker+oci`):
 *
 * - `io.containerd.image.name`, the normalised full name
 *   (`docker.io/library/app:v1`), as docker ≥ 25's own `docker save` writes
 *   it. containerd's importer (`ctr images import`, and `docker load` with the
 *   containerd image store) names the image by it as is; without it, it
 *   falls back to `ref.name` un-normalised, and `docker image inspect
 *   app:v1` then answers "No such image". podman ≥ 4 names a loaded
 *   oci-archive by it too.
 * - `org.opencontainers.image.ref.name`, the tag as given (`app:v1`), not
 *   docker's tag-only `v1`: it is what skopeo (`oci-archive:FILE:app:v1`),
 *   umoci and our own sources select an entry by, and unlike a bare tag it
 *   stays unique when two images share one (`a:latest`, `b:latest`).
 */
function indexAnnotations(item: SaveItem): Record<string, string> {
  return {
    [CONTAINERD_NAME_ANNOTATION]: containerdName(item.parsedTag),
    [REF_NAME_ANNOTATION]: repoTagOf(item.tag),
  };
}

// The manifest describing the blobs actually written.
function manifestBytes(
  image: ConvertedImage,
  compressed: boolean,
  sizes: LayerSizes,
): Uint8Array {
  const { manifest } = image;
  const hasUrls = manifest.layers.some((layer) => layer.urls);
  if (
    compressed && manifest.mediaType === MEDIA_TYPES.ociManifest && !hasUrls
  ) {
    return image.rawManifest; // nothing changes: keep its digest
  }
  // No `urls`: the blobs are in the tarball, and consumers such as skopeo
  // fetch from `urls` first when a layer has them.
  const layers = manifest.layers.map((layer, i) => {
    if (compressed) {
      return {
        mediaType: OCI_LAYER_TYPES[layer.mediaType] ?? layer.mediaType,
        digest: layer.digest,
        size: layer.size,
      };
    }
    return {
      mediaType: isForeignLayer(layer.mediaType)
        ? MEDIA_TYPES.ociForeignLayerTar
        : MEDIA_TYPES.ociLayerTar,
      digest: image.diffIds[i],
      size: sizes.get(layer, image.diffIds[i])!,
    };
  });
  return new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: {
      mediaType: MEDIA_TYPES.ociConfig,
      digest: `sha256:${image.configHex}`,
      size: image.configBytes.byteLength,
    },
    layers,
  }));
}
