/**
 * What the specs name, spelled out here rather than taken from src/: media
 * types, and docs/FORMAT.md's empty-layer digest and v1 id chain.
 *
 * @module
 */

import { sha256Hex } from "./digest.ts";

/** Media types of the Docker and OCI specs. */
export const MEDIA = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerTar: "application/vnd.docker.image.rootfs.diff.tar",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

/**
 * docs/FORMAT.md, "v1 ids": the digest the reference gives an empty layer,
 * without `sha256:`.
 */
export const EMPTY_LAYER_HEX =
  "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

/**
 * The v1 id chain of docs/FORMAT.md: `sha256(hex + " " + parent)`, and for the
 * last history entry `sha256(hex + " " + parent + " " + configText)`.
 */
export function v1Id(hex: string, parent: string, configText?: string): string {
  return sha256Hex(
    configText === undefined
      ? `${hex} ${parent}`
      : `${hex} ${parent} ${configText}`,
  );
}
