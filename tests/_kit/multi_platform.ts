/**
 * A multi-platform fixture: an index over a linux/amd64 and a linux/arm64/v8
 * image (gzip layers) and a buildx-style attestation of the amd64 one.
 *
 * @module
 */

import { buildImage, buildIndex, fromMemory, type Image } from "../../mod.ts";
import { digestOf } from "./digest.ts";
import { MEDIA } from "./format.ts";
import { layerTar } from "./tar.ts";

/** An image of one platform, with two small gzip layers. */
export async function platformImage(
  architecture: string,
  variant?: string,
): Promise<Image> {
  return await buildImage({
    layers: [
      await layerTar({ "etc/arch": `${architecture}\n` }),
      await layerTar({
        "bin/app": `app for ${architecture}${variant ?? ""}\n`,
      }),
    ],
    config: {
      architecture,
      os: "linux",
      ...(variant ? { variant } : {}),
    },
    compression: "gzip",
  });
}

// What buildx attaches: a manifest whose layer is an in-toto statement.
export function attestationFor(subject: string): Image {
  const statement = new TextEncoder().encode(JSON.stringify({
    _type: "https://in-toto.io/Statement/v0.1",
    predicateType: "https://spdx.dev/Document",
    subject: [{ name: "app", digest: { sha256: subject.slice(7) } }],
  }));
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "unknown",
    os: "unknown",
    config: {},
    rootfs: { type: "layers", diff_ids: [digestOf(statement)] },
  }));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: {
      mediaType: MEDIA.ociConfig,
      digest: digestOf(config),
      size: config.byteLength,
    },
    layers: [{
      mediaType: "application/vnd.in-toto+json",
      digest: digestOf(statement),
      size: statement.byteLength,
      annotations: { "in-toto.io/predicate-type": "https://spdx.dev/Document" },
    }],
  };
  return fromMemory({
    manifest: new TextEncoder().encode(JSON.stringify(manifest)),
    config,
    blobs: { [digestOf(statement)]: statement },
  });
}

export async function fixture() {
  const amd64 = await platformImage("amd64");
  const arm64 = await platformImage("arm64", "v8");
  const amd64Digest = digestOf(await amd64.rawManifest());
  const index = await buildIndex([
    { image: amd64, platform: { os: "linux", architecture: "amd64" } },
    {
      image: arm64,
      platform: { os: "linux", architecture: "arm64", variant: "v8" },
    },
    {
      image: attestationFor(amd64Digest),
      platform: { os: "unknown", architecture: "unknown" },
      annotations: {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd64Digest,
      },
    },
  ]);
  return { amd64, arm64, index };
}
