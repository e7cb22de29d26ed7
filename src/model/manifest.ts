/**
 * Reading and checking image manifests (Docker v2.2 and OCI) before anything
 * is written.
 *
 * @module
 */

import { assertSha256Digest } from "./digest.ts";
import { DockerSaveError } from "./errors.ts";
import {
  type Descriptor,
  layerCompression,
  type Manifest,
  MEDIA_TYPES,
} from "./image.ts";

const MANIFEST_TYPES: readonly string[] = [
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.ociManifest,
];
const INDEX_TYPES: readonly string[] = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
];

/**
 * Whether a media type names an index (OCI index or Docker manifest list).
 *
 * @example
 * ```ts
 * import { isIndexMediaType } from "./manifest.ts";
 * isIndexMediaType("application/vnd.oci.image.index.v1+json"); // true
 * ```
 */
export function isIndexMediaType(mediaType: unknown): boolean {
  return INDEX_TYPES.includes(mediaType as string);
}

/**
 * Parses manifest bytes and checks them with `assertValidManifest`.
 *
 * @example
 * ```ts
 * import { parseManifest } from "./manifest.ts";
 * declare const bytes: Uint8Array;
 * const manifest = parseManifest(bytes, "oci:./oci");
 * ```
 */
export function parseManifest(bytes: Uint8Array, what: string): Manifest {
  const value = decodeJson(
    bytes,
    (error) => `Cannot read manifest of ${what}: ${error.message}`,
  );
  assertValidManifest(value, what);
  return value;
}

// JSON bytes decoded, or BAD_MANIFEST with the message `failure` gives.
function decodeJson(
  bytes: Uint8Array,
  failure: (error: Error) => string,
): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new DockerSaveError("BAD_MANIFEST", failure(error as Error), {
      cause: error,
    });
  }
}

/**
 * Parses JSON bytes that must hold an object (a manifest, an index), or
 * throws `DockerSaveError` `BAD_MANIFEST` naming `what`.
 *
 * @example
 * ```ts
 * import { parseJsonObject } from "./manifest.ts";
 * parseJsonObject(new TextEncoder().encode("{}"), "an index"); // {}
 * ```
 */
export function parseJsonObject(
  bytes: Uint8Array,
  what: string,
): Record<string, unknown> {
  const value = decodeJson(bytes, () => `Cannot read ${what}: it is not JSON`);
  if (!isObject(value)) {
    throw new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read ${what}: it is not a JSON object`,
    );
  }
  return value;
}

/**
 * Throws `DockerSaveError` unless `value` is an image manifest the pipeline
 * can save: schema 2, a Docker v2.2 or OCI media type, a config descriptor, and
 * layer descriptors with sha256 digests, sizes and known layer media types.
 *
 * @example
 * ```ts
 * import { assertValidManifest } from "./manifest.ts";
 * declare const value: unknown;
 * assertValidManifest(value, "image 1");
 * ```
 */
export function assertValidManifest(
  value: unknown,
  what: string,
): asserts value is Manifest {
  const bad = (reason: string) =>
    new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read manifest of ${what}: ${reason}`,
    );
  if (!isObject(value)) throw bad("it is not a JSON object");
  if (value.schemaVersion !== 2) {
    throw bad(
      `schemaVersion is ${JSON.stringify(value.schemaVersion)}, expected 2`,
    );
  }
  if (isIndexMediaType(value.mediaType) || Array.isArray(value.manifests)) {
    throw bad("it is an index, not an image manifest; choose a platform");
  }
  if (
    value.mediaType !== undefined &&
    !MANIFEST_TYPES.includes(value.mediaType as string)
  ) {
    throw bad(
      `media type ${JSON.stringify(value.mediaType)} is not an image manifest`,
    );
  }
  assertDescriptor(value.config, `${what} config`, bad);
  if (!Array.isArray(value.layers)) throw bad("it has no layers list");
  value.layers.forEach((layer: unknown, i: number) => {
    assertDescriptor(layer, `${what} layer ${i}`, bad);
    if (layerCompression(layer.mediaType) === undefined) {
      throw new DockerSaveError(
        "UNSUPPORTED_MEDIA_TYPE",
        `Cannot save ${what}: layer ${layer.digest} has unknown media type "${layer.mediaType}"`,
      );
    }
  });
}

function assertDescriptor(
  value: unknown,
  what: string,
  bad: (reason: string) => Error,
): asserts value is Descriptor {
  if (!isObject(value)) throw bad(`${what} is not a descriptor`);
  if (typeof value.mediaType !== "string") {
    throw bad(`${what} has no mediaType`);
  }
  if (!Number.isSafeInteger(value.size) || (value.size as number) < 0) {
    throw bad(`${what} size ${JSON.stringify(value.size)} is not a byte count`);
  }
  assertSha256Digest(value.digest, what);
}

/**
 * Whether a value `JSON.parse` gave is a JSON object (not null, not a list).
 *
 * @example
 * ```ts
 * import { isObject } from "./manifest.ts";
 * isObject(JSON.parse('{"a":1}')); // true
 * isObject(JSON.parse("[]")); // false
 * ```
 */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The manifest of an artifact in an index (a buildx attestation): parsed
 * only as far as its config and blob descriptors, which `save()` checks
 * before it reads them. Throws `DockerSaveError` `BAD_MANIFEST` for bytes
 * that are not a JSON object.
 *
 * @example
 * ```ts
 * import { parseArtifact } from "./manifest.ts";
 * declare const bytes: Uint8Array;
 * const { config, layers } = parseArtifact(bytes, "an attestation");
 * ```
 */
export function parseArtifact(bytes: Uint8Array, what: string): Manifest {
  const value = parseJsonObject(bytes, `artifact manifest of ${what}`);
  return value as unknown as Manifest;
}
