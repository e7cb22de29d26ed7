/**
 * Writes the tarballs the modern-loader tests feed to docker, containerd,
 * skopeo, crane and umoci. The test runs this script under node, deno and
 * bun and checks the three sets of files are byte-identical, so the loaders
 * need to read only one of them.
 *
 * ```
 * node --import tsx tests/_kit/modern_save.ts JOBS.json OUT_DIR
 * deno run -A tests/_kit/modern_save.ts JOBS.json OUT_DIR
 * bun tests/_kit/modern_save.ts JOBS.json OUT_DIR
 * ```
 *
 * @module
 */

import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import type { Image } from "../../src/model/image.ts";
import {
  type ImageIndex,
  isImageIndex,
  type PlatformSelection,
  selectPlatforms,
} from "../../src/model/image_index.ts";
import { type LayerMode, save, type SaveFormat } from "../../src/save/save.ts";
import { fromDockerArchive } from "../../src/sources/archive/docker_archive.ts";
import {
  fromOciArchive,
  fromOciArchiveIndex,
} from "../../src/sources/archive/oci_archive.ts";
import {
  fromOciLayout,
  fromOciLayoutIndex,
} from "../../src/sources/oci_layout.ts";
import {
  fromRegistry,
  fromRegistryIndex,
} from "../../src/sources/registry/pull.ts";

/**
 * Where an image comes from. With `platforms`, the source's index (the
 * `from…Index` reader) narrowed by `selectPlatforms`.
 */
export type SaveSource =
  & (
    | { kind: "oci-layout"; dir: string; ref: string }
    | { kind: "oci-archive"; path: string; ref: string }
    | { kind: "docker-archive"; path: string; tag?: string }
    | { kind: "registry"; reference: string }
  )
  & { platforms?: PlatformSelection };

/** One tarball to write: `OUT_DIR/<name>.tar`. */
export interface SaveJob {
  name: string;
  format: SaveFormat;
  layers: LayerMode;
  /** The platform manifest.json names for an index (`docker+oci`). */
  defaultPlatform?: string;
  entries: { tag: string; source: SaveSource }[];
}

async function open(source: SaveSource): Promise<Image | ImageIndex> {
  const { platforms } = source;
  if (platforms === undefined) {
    switch (source.kind) {
      case "oci-layout":
        return await fromOciLayout(source.dir, source.ref);
      case "oci-archive":
        return await fromOciArchive(source.path, source.ref);
      case "docker-archive":
        return await fromDockerArchive(source.path, source.tag);
      case "registry":
        return await fromRegistry(source.reference, { dockerConfig: false });
    }
  }
  const found = source.kind === "oci-layout"
    ? await fromOciLayoutIndex(source.dir, source.ref)
    : source.kind === "oci-archive"
    ? await fromOciArchiveIndex(source.path, source.ref)
    : source.kind === "docker-archive"
    ? await fromOciArchiveIndex(source.path, source.tag)
    : await fromRegistryIndex(source.reference, { dockerConfig: false });
  return isImageIndex(found) ? await selectPlatforms(found, platforms) : found;
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
    const tar = save(entries, {
      format: job.format,
      layers: job.layers,
      defaultPlatform: job.defaultPlatform,
    });
    await writeFile(
      join(outDir, `${job.name}.tar`),
      new Uint8Array(await new Response(tar).arrayBuffer()),
    );
  }
}

if (import.meta.main ?? process.argv[1]?.endsWith("modern_save.ts")) {
  const [jobsFile, outDir] = process.argv.slice(2);
  await writeJobs(JSON.parse(await readFile(jobsFile, "utf8")), outDir);
}
