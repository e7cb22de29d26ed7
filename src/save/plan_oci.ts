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

import { hexOf, sha256Hex } from "../digest.ts";
import { type Descriptor, isForeignLayer, MEDIA_TYPES } from "../image.ts";
import { dumpJson, type JsonValue } from "../json.ts";
import { type ParsedTag, repoTagOf } from "../tag.ts";
import {
  bytesEntry,
  type LayerSizes,
  type PlannedEntry,
  textEntry,
} from "./entries.ts";
import { layerSourcesOf, repositoriesOf } from "./docker_json.ts";
import type { ConvertedImage } from "./v1.ts";

/** How `planOciEntries` lays the tarball out. */
export interface OciPlanOptions {
  /** Add `manifest.json` and `repositories` for classic `docker load`. */
  docker: boolean;
  /** Layers are stored as their blobs (else as uncompressed tars). */
  compressed: boolean;
}

/** The annotation containerd names an imported image by. */
export const CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name";
/** The annotation OCI tools choose an index entry by. */
export const OCI_REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

const OCI_LAYER_TYPES: Record<string, string> = {
  [MEDIA_TYPES.dockerLayerGzip]: MEDIA_TYPES.ociLayerGzip,
  [MEDIA_TYPES.dockerLayerTar]: MEDIA_TYPES.ociLayerTar,
  [MEDIA_TYPES.dockerForeignLayerGzip]: MEDIA_TYPES.ociForeignLayerGzip,
};

/**
 * All members of an OCI layout tarball for the given images: `oci-layout`,
 * config blobs, layer blobs, manifest blobs, `index.json`, and with
 * `docker`, `manifest.json` and `repositories`.
 *
 * @example
 * ```ts
 * import { planOciEntries } from "./plan_oci.ts";
 * import type { ConvertedImage } from "./v1.ts";
 * declare const images: ConvertedImage[];
 * for (const entry of planOciEntries(images, { docker: true, compressed: false })) {
 *   console.log("name" in entry ? entry.name : "(built later)");
 * }
 * ```
 */
export function* planOciEntries(
  images: readonly ConvertedImage[],
  options: OciPlanOptions,
): Generator<PlannedEntry> {
  const written = new Set<string>();
  const once = (name: string) => !written.has(name) && !!written.add(name);
  const layerBlobName = (image: ConvertedImage, i: number) =>
    blobName(
      options.compressed ? image.manifest.layers[i].digest : image.diffIds[i],
    );

  yield textEntry("oci-layout", '{"imageLayoutVersion": "1.0.0"}');
  for (const image of images) {
    const name = blobName(`sha256:${image.configHex}`);
    if (once(name)) yield bytesEntry(name, image.configBytes);
  }
  for (const image of images) {
    for (const [i, layer] of image.manifest.layers.entries()) {
      const name = layerBlobName(image, i);
      if (once(name)) {
        yield { name, image: image.image, layer, diffId: image.diffIds[i] };
      }
    }
  }
  const manifests: Descriptor[] = [];
  for (const image of images) {
    yield {
      build: async (sizes) => {
        const bytes = manifestBytes(image, options.compressed, sizes);
        const digest = `sha256:${await sha256Hex(bytes)}`;
        manifests.push({
          mediaType: MEDIA_TYPES.ociManifest,
          digest,
          size: bytes.byteLength,
        });
        const name = blobName(digest);
        return once(name) ? bytesEntry(name, bytes) : undefined;
      },
    };
  }
  yield {
    build: () =>
      Promise.resolve(textEntry(
        "index.json",
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociIndex,
          manifests: images.map((image, i) => ({
            ...manifests[i],
            annotations: {
              ...(options.docker
                ? {
                  [CONTAINERD_NAME_ANNOTATION]: containerdName(image.parsedTag),
                }
                : {}),
              [OCI_REF_NAME_ANNOTATION]: repoTagOf(image.tag),
            },
          })),
        }),
      )),
  };
  if (options.docker) {
    yield textEntry(
      "manifest.json",
      dumpJson(images.map((image): JsonValue => {
        const entry: { [key: string]: JsonValue } = {
          Config: blobName(`sha256:${image.configHex}`),
          Layers: image.manifest.layers.map((_, i) => layerBlobName(image, i)),
          RepoTags: [repoTagOf(image.tag)],
        };
        const sources = layerSourcesOf(image);
        if (sources) entry.LayerSources = sources;
        return entry;
      })),
    );
    yield textEntry("repositories", dumpJson(repositoriesOf(images)));
  }
}

/**
 * The fully qualified name containerd gives an image: Docker Hub names get
 * `docker.io/` and `library/`, and an untagged name `:latest`.
 *
 * @example
 * ```ts
 * import { containerdName } from "./plan_oci.ts";
 * import { parseTag } from "../tag.ts";
 * containerdName(parseTag("ubuntu")); // "docker.io/library/ubuntu:latest"
 * ```
 */
export function containerdName(tag: ParsedTag): string {
  const hub = tag.registry === "" || tag.registry === "docker.io" ||
    tag.registry === "index.docker.io";
  const repository = hub && !tag.repository.includes("/")
    ? `library/${tag.repository}`
    : tag.repository;
  return `${hub ? "docker.io" : tag.registry}/${repository}:${
    tag.tag ?? "latest"
  }`;
}

function blobName(digest: string): string {
  return `blobs/sha256/${hexOf(digest)}`;
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
