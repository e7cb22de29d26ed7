/**
 * Writes the tarballs the modern-loader tests feed to docker, containerd,
 * skopeo, crane and umoci. The test runs this script under node, deno and
 * bun and checks the three sets of files are byte-identical, so the loaders
 * need to read only one of them.
 *
 * ```
 * node --import tsx tests/_modern_save.ts JOBS.json OUT_DIR
 * deno run -A tests/_modern_save.ts JOBS.json OUT_DIR
 * bun tests/_modern_save.ts JOBS.json OUT_DIR
 * ```
 *
 * @module
 */

import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import type { Image } from "../src/image.ts";
import { buildIndex, type ImageIndex } from "../src/image_index.ts";
import { type LayerMode, save, type SaveFormat } from "../src/save.ts";
import { fromDockerArchive } from "../src/sources/docker_archive.ts";
import { buildImage } from "../src/sources/memory.ts";
import { fromOciLayout } from "../src/sources/oci_layout.ts";
import { fromRegistry } from "../src/sources/registry.ts";

/** Where an image comes from. */
export type SaveSource =
  | { kind: "oci-layout"; dir: string; ref: string }
  | { kind: "docker-archive"; path: string; tag?: string }
  | { kind: "registry"; reference: string }
  /**
   * A two-platform index built here from plain-tar layers (the same bytes
   * on every runtime): linux/amd64 from the layer file `amd64`, linux/arm64
   * from `arm64`.
   */
  | { kind: "index"; amd64: string; arm64: string };

/** One tarball to write: `OUT_DIR/<name>.tar`. */
export interface SaveJob {
  name: string;
  format: SaveFormat;
  layers: LayerMode;
  entries: { tag: string; source: SaveSource }[];
}

function open(source: SaveSource): Promise<Image | ImageIndex> {
  switch (source.kind) {
    case "index":
      return twoPlatforms(source.amd64, source.arm64);
    case "oci-layout":
      return fromOciLayout(source.dir, source.ref);
    case "docker-archive":
      return fromDockerArchive(source.path, source.tag);
    case "registry":
      return fromRegistry(source.reference, { dockerConfig: false });
  }
}

async function twoPlatforms(amd64: string, arm64: string) {
  const image = async (layer: string, architecture: string) =>
    buildImage({
      layers: [new Uint8Array(await readFile(layer))],
      config: { architecture, os: "linux" },
    });
  return await buildIndex([
    {
      image: await image(amd64, "amd64"),
      platform: { os: "linux", architecture: "amd64" },
    },
    {
      image: await image(arm64, "arm64"),
      platform: { os: "linux", architecture: "arm64" },
    },
  ]);
}

/** Writes every job's tarball into `outDir`. */
export async function writeJobs(
  jobs: readonly SaveJob[],
  outDir: string,
): Promise<void> {
  for (const job of jobs) {
    const entries: [string, Image | ImageIndex][] = [];
    for (const { tag, source } of job.entries) {
      entries.push([tag, await open(source)]);
    }
    const tar = save(entries, { format: job.format, layers: job.layers });
    await writeFile(
      join(outDir, `${job.name}.tar`),
      new Uint8Array(await new Response(tar).arrayBuffer()),
    );
  }
}

if (import.meta.main ?? process.argv[1]?.endsWith("_modern_save.ts")) {
  const [jobsFile, outDir] = process.argv.slice(2);
  await writeJobs(JSON.parse(await readFile(jobsFile, "utf8")), outDir);
}
