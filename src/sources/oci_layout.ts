/**
 * Images from an OCI image layout directory (`oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`), as written by skopeo, buildah, crane or docker ≥ 25.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import type { Descriptor, Image } from "../model/image.ts";
import type { ImageIndex, IndexManifest } from "../model/image_index.ts";
import { checkImagePlatform } from "../model/platform.ts";
import { parseTag } from "../model/tag.ts";
import {
  type CheckedIndex,
  imageOrArtifact,
  parseIndexManifest,
} from "../model/index_manifest.ts";
import { assertIndexDepth, followPlatform } from "../model/index_walk.ts";
import {
  isIndexMediaType,
  parseArtifact,
  parseManifest,
} from "../model/manifest.ts";
import {
  blobPath,
  CONTAINERD_NAME_ANNOTATION,
  containerdName,
  REF_NAME_ANNOTATION,
} from "../model/oci_layout_names.ts";
import {
  type FileSystem,
  isNotFound,
  nodeFileSystem,
  UnsafeFileError,
} from "../runtime/fs.ts";
import {
  MAX_JSON_BYTES,
  readAtMost,
  readVerifiedBlob,
} from "./bounded_read.ts";

export { REF_NAME_ANNOTATION } from "../model/oci_layout_names.ts";

/** Options for `fromOciLayout`. */
export interface FromOciLayoutOptions {
  /**
   * File access; `node:fs` where the runtime has it.
   * @default {nodeFileSystem()}
   */
  fs?: FileSystem;
  /**
   * The platform to take from a multi-platform index, `os/arch[/variant]`.
   * @default {"linux/amd64"}
   */
  platform?: string;
  /**
   * What error messages call the layout, e.g. an archive that holds it.
   * @default {`OCI layout "<dir>"`}
   */
  label?: string;
}

/**
 * The image an OCI layout's `index.json` names: the entry whose
 * `org.opencontainers.image.ref.name` annotation is `ref` (or whose
 * `io.containerd.image.name` is that tag, as docker ≥ 25 writes it), or the
 * only entry when `ref` is omitted. An entry that is itself an index is
 * resolved by platform. The manifest is checked against its descriptor here;
 * layers are read lazily, and verified by `save()`.
 *
 * @example
 * ```ts
 * import { fromOciLayout } from "./oci_layout.ts";
 * const image = await fromOciLayout("./oci", "app");
 * ```
 */
export async function fromOciLayout(
  dir: string,
  ref?: string,
  options: FromOciLayoutOptions = {},
): Promise<Image> {
  const layout = await openLayout(dir, ref, options);
  const wanted = options.platform ?? "linux/amd64";
  const { node, platform } = await followPlatform(
    layout.entry,
    wanted,
    layout.what,
    {
      isIndex: (descriptor) => isIndexMediaType(descriptor.mediaType),
      entries: async (descriptor) =>
        parseIndexManifest(
          await layout.readBlob(descriptor, "index"),
          `index ${descriptor.digest} of ${layout.what}`,
        ).manifests,
      child: (entry) => Promise.resolve(entry),
    },
  );
  const image = await layout.image(node);
  // A platform asked for of a single image: it must be that image's, as
  // for a registry's (no index entry chose it).
  if (options.platform !== undefined && platform === undefined) {
    checkImagePlatform(await image.rawConfig(), options.platform, layout.what);
  }
  return image;
}

/**
 * Every platform of the entry an OCI layout's `index.json` names (chosen as
 * `fromOciLayout` does): an `ImageIndex` whose children are read from the
 * layout, each checked against its descriptor, or the image itself when the
 * entry is a single-platform image. A child whose blob the layout lacks is
 * absent (`child()` answers `undefined`), as in a containerd-store
 * `docker save`; choose with `selectPlatforms`.
 *
 * @example Save every platform
 * ```ts
 * import { fromOciLayoutIndex } from "./oci_layout.ts";
 * import { save } from "../save/save.ts";
 * const app = await fromOciLayoutIndex("./oci", "app");
 * save([["app:v1", app]], { format: "oci", layers: "compressed" });
 * ```
 */
export async function fromOciLayoutIndex(
  dir: string,
  ref?: string,
  options: FromOciLayoutOptions = {},
): Promise<Image | ImageIndex> {
  const layout = await openLayout(dir, ref, options);
  if (!isIndexMediaType(layout.entry.mediaType)) {
    return await layout.image(layout.entry);
  }
  return await layout.index(layout.entry, 1);
}

// An opened layout: its chosen entry and how to read what it names.
async function openLayout(
  dir: string,
  ref: string | undefined,
  options: FromOciLayoutOptions,
) {
  const fs = options.fs ?? await nodeFileSystem();
  if (!fs) {
    throw new TypeError(
      "Cannot open OCI layout: no file system; pass options.fs",
    );
  }
  const label = options.label ?? `OCI layout "${dir}"`;
  const what = `${label}${ref === undefined ? "" : ` ref "${ref}"`}`;
  // The layout's own small files, read up to the JSON cap.
  const readLayoutFile = async (path: string): Promise<Uint8Array> => {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readAtMost(
        await fs.openRead(`${dir}/${path}`, undefined, { within: dir }),
        MAX_JSON_BYTES,
      );
    } catch (error) {
      throw new DockerSaveError(
        "BAD_LAYOUT",
        isNotFound(error)
          ? `Cannot read ${what}: ${path} is missing`
          : `Cannot read ${path} of ${what}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (bytes === undefined) {
      throw new DockerSaveError(
        "BAD_LAYOUT",
        `Cannot read ${path} of ${what}: it has more than ${MAX_JSON_BYTES} bytes`,
      );
    }
    return bytes;
  };
  let layout: { imageLayoutVersion?: unknown } | undefined;
  try {
    layout = JSON.parse(
      new TextDecoder().decode(await readLayoutFile("oci-layout")),
    );
  } catch (error) {
    if (error instanceof DockerSaveError) throw error;
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${what}: oci-layout is not JSON`,
      { cause: error },
    );
  }
  if (typeof layout?.imageLayoutVersion !== "string") {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${what}: oci-layout has no imageLayoutVersion`,
    );
  }
  const blobFile = (digest: string) => `${dir}/${blobPath(digest, what)}`;
  const openBlob = async (digest: string, start: number) => {
    try {
      // Only files inside the layout: a blob that links out of it (to a
      // secret, to /proc/self/environ) would otherwise be served, and a
      // range of it cannot be verified before it is sent.
      return await fs.openRead(blobFile(digest), { start }, { within: dir });
    } catch (error) {
      throw notFound(error, digest, what);
    }
  };
  // Every index, manifest and config is hashed against its descriptor (as
  // containers/image checks each manifest it chooses from an index), so a
  // blob cannot stand for another one, nor an index list itself.
  const readBlob = (
    descriptor: Descriptor,
    kind: "index" | "manifest" | "config",
  ): Promise<Uint8Array> =>
    readVerifiedBlob(
      () => openBlob(descriptor.digest, 0),
      descriptor,
      `${kind} ${descriptor.digest} of ${what}`,
      { code: kind === "config" ? "BAD_CONFIG" : "BAD_MANIFEST" },
    ).catch((error) => {
      throw notFound(error, descriptor.digest, what);
    });

  const image = async (descriptor: Descriptor): Promise<Image> => {
    const rawManifest = await readBlob(descriptor, "manifest");
    const manifest = parseManifest(rawManifest, what);
    const rawConfig = await readBlob(manifest.config, "config");
    return {
      rawManifest: () => Promise.resolve(rawManifest),
      manifest: () => Promise.resolve(manifest),
      rawConfig: () => Promise.resolve(rawConfig),
      openLayer: (layer) => openBlob(layer.digest, 0),
      layerAccess: (layer) =>
        Promise.resolve({
          openBlobFrom: (offset: number) => openBlob(layer.digest, offset),
        }),
    };
  };
  // An artifact child (an attestation) has no image config we can parse:
  // its blobs are served as they are; save() checks every one.
  const artifact = async (descriptor: Descriptor): Promise<Image> => {
    const rawManifest = await readBlob(descriptor, "manifest");
    const value = parseArtifact(rawManifest, what);
    return {
      rawManifest: () => Promise.resolve(rawManifest),
      manifest: () => Promise.resolve(value),
      rawConfig: () => readBlob(value.config, "config"),
      openLayer: (layer) => openBlob(layer.digest, 0),
    };
  };
  const index = async (
    descriptor: Descriptor,
    depth: number,
  ): Promise<ImageIndex> => {
    assertIndexDepth(depth, what);
    const rawIndex = await readBlob(descriptor, "index");
    const parsed = parseIndexManifest(
      rawIndex,
      `index ${descriptor.digest} of ${what}`,
    ) as IndexManifest;
    return {
      rawIndex: () => Promise.resolve(rawIndex),
      index: () => Promise.resolve(structuredClone(parsed)),
      child: async (entry) => {
        try {
          if (isIndexMediaType(entry.mediaType)) {
            return await index(entry, depth + 1);
          }
          return await imageOrArtifact(
            entry,
            () => image(entry),
            () => artifact(entry),
          );
        } catch (error) {
          // What the layout does not hold is absent, as in a partial save.
          if (
            error instanceof DockerSaveError && error.code === "BLOB_NOT_FOUND"
          ) return undefined;
          throw error;
        }
      },
    };
  };

  const entry = chooseEntry(
    parseIndexManifest(
      await readLayoutFile("index.json"),
      `index.json of ${what}`,
      "BAD_LAYOUT",
    ),
    ref,
    what,
  );
  return { what, entry, readBlob, image, index };
}

function chooseEntry(
  index: CheckedIndex,
  ref: string | undefined,
  what: string,
): Descriptor {
  const entries = index.manifests;
  const refs = entries.map((entry) => entry.annotations?.[REF_NAME_ANNOTATION]);
  if (ref === undefined) {
    if (entries.length === 1) return entries[0];
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot choose an image from ${what}: index.json has ${entries.length} entries, give a ref (${
        listRefs(refs)
      })`,
    );
  }
  // docker ≥ 25 names entries by io.containerd.image.name, with a tag-only
  // ref.name: a full tag finds its entry there too.
  const names = entries.map((entry) =>
    entry.annotations?.[CONTAINERD_NAME_ANNOTATION]
  );
  let found = entries.filter((_, i) => refs[i] === ref);
  if (found.length === 0) {
    const full = containerdNameOf(ref);
    found = entries.filter((_, i) =>
      names[i] !== undefined && names[i] === full
    );
  }
  if (found.length !== 1) {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot choose an image from ${what}: ${found.length} entries have that ref (${
        listRefs(refs)
      })`,
    );
  }
  return found[0];
}

function listRefs(refs: (string | undefined)[]): string {
  const named = refs.filter((ref) => ref !== undefined).map((ref) =>
    `"${ref}"`
  );
  return named.length ? `refs: ${named.join(", ")}` : "no entry has a ref name";
}

function notFound(error: unknown, digest: string, what: string): Error {
  if (error instanceof DockerSaveError) return error;
  // A blob that is there but may not be read is no missing blob (a missing
  // platform is skipped): the layout is bad.
  if (error instanceof UnsafeFileError) {
    return new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot open blob ${digest} of ${what}: ${error.message}`,
      { cause: error },
    );
  }
  return new DockerSaveError(
    "BLOB_NOT_FOUND",
    isNotFound(error)
      ? `Cannot open blob ${digest} of ${what}: no such file`
      : `Cannot open blob ${digest} of ${what}: ${(error as Error).message}`,
    { cause: error },
  );
}

// A tag's containerd name, or undefined when it is not a tag.
function containerdNameOf(ref: string): string | undefined {
  try {
    return containerdName(parseTag(ref));
  } catch {
    return undefined;
  }
}
