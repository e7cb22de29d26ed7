/**
 * Images from an OCI image layout directory (`oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`), as written by skopeo, buildah, crane or docker ≥ 25.
 *
 * @module
 */

import { DockerSaveError } from "../errors.ts";
import type { Descriptor, Image } from "../image.ts";
import { MAX_INDEX_DEPTH, parseIndexManifest } from "../index_manifest.ts";
import { isIndexMediaType, parseManifest } from "../manifest.ts";
import { blobPath, REF_NAME_ANNOTATION } from "../oci_layout_names.ts";
import { type FileSystem, isNotFound, nodeFileSystem } from "../runtime/fs.ts";
import { choosePlatform as chooseIndexPlatform } from "../platform.ts";
import {
  MAX_JSON_BYTES,
  readAtMost,
  readVerifiedBlob,
} from "./_bounded_read.ts";

export { REF_NAME_ANNOTATION } from "../oci_layout_names.ts";

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

interface Index {
  manifests?: Descriptor[];
}

/**
 * The image an OCI layout's `index.json` names: the entry whose
 * `org.opencontainers.image.ref.name` annotation is `ref`, or the only entry
 * when `ref` is omitted. An entry that is itself an index is resolved by
 * platform. The manifest is checked against its descriptor here; layers are
 * read lazily, and verified by `save()`.
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
        await fs.openRead(`${dir}/${path}`),
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
      return await fs.openRead(blobFile(digest), { start });
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

  let descriptor = chooseEntry(
    parseIndexManifest(
      await readLayoutFile("index.json"),
      `index.json of ${what}`,
      "BAD_LAYOUT",
    ),
    ref,
    what,
  );
  const platform = options.platform ?? "linux/amd64";
  for (let depth = 0; isIndexMediaType(descriptor.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH) {
      throw new DockerSaveError(
        "BAD_MANIFEST",
        `Cannot read ${what}: indexes nest deeper than ${MAX_INDEX_DEPTH}`,
      );
    }
    const nested = parseIndexManifest(
      await readBlob(descriptor, "index"),
      `index ${descriptor.digest} of ${what}`,
    );
    descriptor = choosePlatform(nested, platform, what);
  }
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
}

function chooseEntry(
  index: Index,
  ref: string | undefined,
  what: string,
): Descriptor {
  const entries = Array.isArray(index?.manifests) ? index.manifests : [];
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
  const found = entries.filter((_, i) => refs[i] === ref);
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

// One platform rule for every source: see src/platform.ts.
function choosePlatform(
  index: Index,
  wanted: string,
  what: string,
): Descriptor {
  return chooseIndexPlatform(
    Array.isArray(index?.manifests) ? index.manifests : [],
    wanted,
    what,
  );
}

function listRefs(refs: (string | undefined)[]): string {
  const named = refs.filter((ref) => ref !== undefined).map((ref) =>
    `"${ref}"`
  );
  return named.length ? `refs: ${named.join(", ")}` : "no entry has a ref name";
}

function notFound(error: unknown, digest: string, what: string): Error {
  if (error instanceof DockerSaveError) return error;
  return new DockerSaveError(
    "BLOB_NOT_FOUND",
    isNotFound(error)
      ? `Cannot open blob ${digest} of ${what}: no such file`
      : `Cannot open blob ${digest} of ${what}: ${(error as Error).message}`,
    { cause: error },
  );
}
