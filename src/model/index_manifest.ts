/**
 * Reading and checking image indexes (an OCI layout's `index.json`, a nested
 * OCI index, a Docker manifest list) before anything follows them.
 *
 * @module
 */

import { DockerSaveError, type DockerSaveErrorCode } from "./errors.ts";
import type { Descriptor } from "./image.ts";
import type { IndexManifest } from "./image_index.ts";
import { isObject } from "./manifest.ts";
import { isAttestation } from "./platform.ts";

/** An index as parsed, its entries checked: every one is a descriptor. */
export type CheckedIndex = Pick<IndexManifest, "manifests">;

/**
 * Parses index bytes and checks their shape: a JSON object whose `manifests`
 * (if present) is a list of descriptors, each an object with a string
 * `digest`, a byte-count `size`, and `mediaType`, `platform` and
 * `annotations` of the right types when present. The digest's algorithm is
 * checked where a blob is looked up, not here: an entry for another image
 * may use one this library cannot verify. Throws `DockerSaveError` with
 * `code` (default `BAD_MANIFEST`).
 *
 * @example
 * ```ts
 * import { parseIndexManifest } from "./index_manifest.ts";
 * declare const bytes: Uint8Array;
 * const { manifests } = parseIndexManifest(bytes, 'index.json of OCI layout "./oci"', "BAD_LAYOUT");
 * ```
 */
export function parseIndexManifest(
  bytes: Uint8Array,
  what: string,
  code: DockerSaveErrorCode = "BAD_MANIFEST",
): CheckedIndex {
  const bad = (reason: string, cause?: unknown) =>
    new DockerSaveError(code, `Cannot read ${what}: ${reason}`, { cause });
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw bad(`it is not JSON (${(error as Error).message})`, error);
  }
  if (!isObject(value)) throw bad("it is not a JSON object");
  const manifests = value.manifests ?? [];
  if (!Array.isArray(manifests)) throw bad("manifests is not a list");
  manifests.forEach((entry: unknown, i: number) => {
    const name = `manifests[${i}]`;
    if (!isObject(entry)) throw bad(`${name} is not a descriptor`);
    if (typeof entry.digest !== "string") throw bad(`${name} has no digest`);
    if (!Number.isSafeInteger(entry.size) || (entry.size as number) < 0) {
      throw bad(
        `${name} size ${JSON.stringify(entry.size)} is not a byte count`,
      );
    }
    if (entry.mediaType !== undefined && typeof entry.mediaType !== "string") {
      throw bad(`${name} mediaType is not a string`);
    }
    for (const key of ["platform", "annotations"]) {
      if (entry[key] !== undefined && !isObject(entry[key])) {
        throw bad(`${name} ${key} is not an object`);
      }
    }
  });
  // The rest as it is: a subset of the index keeps schemaVersion, mediaType
  // and annotations.
  return { ...value, manifests: manifests as Descriptor[] };
}

/**
 * An index child read as an image, or as an artifact (copied blob for blob)
 * when it is not one: an attestation (`unknown/unknown`), or a manifest
 * whose layers are not image layers (`UNSUPPORTED_MEDIA_TYPE`). The one rule
 * the sources and `save()` use.
 *
 * @example
 * ```ts
 * import { imageOrArtifact } from "./index_manifest.ts";
 * import type { Descriptor } from "./image.ts";
 * declare const entry: Descriptor;
 * declare function asImage(): Promise<string>;
 * declare function asArtifact(): Promise<string>;
 * const child = await imageOrArtifact(entry, asImage, asArtifact);
 * ```
 */
export async function imageOrArtifact<T>(
  entry: Descriptor,
  asImage: () => Promise<T>,
  asArtifact: () => T | Promise<T>,
): Promise<T> {
  if (isAttestation(entry.platform)) return await asArtifact();
  try {
    return await asImage();
  } catch (error) {
    const notAnImage = error instanceof DockerSaveError &&
      error.code === "UNSUPPORTED_MEDIA_TYPE";
    if (!notAnImage) throw error;
    return await asArtifact();
  }
}
