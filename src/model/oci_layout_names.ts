/**
 * The names the OCI image layout fixes, in one place for the sources that
 * read layouts and the writer that makes them: where a blob lives
 * (`blobs/<alg>/<hex>`, as go-containerregistry's `layout/blob.go` builds it)
 * and the annotation an index entry is chosen by.
 *
 * @module
 */

import { assertSha256Digest, hexOf } from "./digest.ts";
import type { ParsedTag } from "./tag.ts";

/**
 * The annotation an OCI index entry is chosen by (`oci:DIR:REF`).
 *
 * @example
 * ```ts
 * import { REF_NAME_ANNOTATION } from "./oci_layout_names.ts";
 * const entry = { annotations: { [REF_NAME_ANNOTATION]: "app" } };
 * ```
 */
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

/**
 * The annotation containerd (and docker ≥ 25's store) names an imported
 * image by: the normalised full name, `docker.io/library/alpine:3.20`.
 *
 * @example
 * ```ts
 * import { CONTAINERD_NAME_ANNOTATION } from "./oci_layout_names.ts";
 * const entry = { annotations: { [CONTAINERD_NAME_ANNOTATION]: "docker.io/library/alpine:3.20" } };
 * ```
 */
export const CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name";

/**
 * The fully qualified name containerd gives an image: Docker Hub names get
 * `docker.io/` and `library/`, and an untagged name `:latest`.
 *
 * @example
 * ```ts
 * import { containerdName } from "./oci_layout_names.ts";
 * import { parseTag } from "./tag.ts";
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

const BLOB_PATH = /^blobs\/sha256\/([0-9a-f]{64})$/;

/**
 * Where a blob lives in an OCI image layout, relative to its root:
 * `blobs/sha256/<hex>`. Throws `DockerSaveError` `BAD_DIGEST` unless the
 * digest is a well-formed sha256 one, the only algorithm verified here (so a
 * digest never puts `../` into a path).
 *
 * @example
 * ```ts
 * import { blobPath } from "./oci_layout_names.ts";
 * blobPath("sha256:" + "ab".repeat(32)); // "blobs/sha256/abab…"
 * ```
 */
export function blobPath(digest: string, what = "a blob"): string {
  assertSha256Digest(digest, what);
  return `blobs/sha256/${hexOf(digest)}`;
}

/**
 * The digest a layout path names (`blobs/sha256/<hex>` → `sha256:<hex>`), or
 * `undefined` for any other path. The path must be normalised.
 *
 * @example
 * ```ts
 * import { digestOfBlobPath } from "./oci_layout_names.ts";
 * digestOfBlobPath("blobs/sha256/" + "ab".repeat(32)); // "sha256:abab…"
 * digestOfBlobPath("manifest.json"); // undefined
 * ```
 */
export function digestOfBlobPath(path: string): string | undefined {
  const hex = BLOB_PATH.exec(path)?.[1];
  return hex === undefined ? undefined : `sha256:${hex}`;
}
