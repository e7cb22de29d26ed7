/**
 * Opens split SOURCE arguments as images, with the options of the command
 * line.
 *
 * @module
 */

import type { Image } from "../image.ts";
import type { ArchiveIndex } from "../sources/_archive_index.ts";
import {
  fromDockerArchive,
  indexDockerArchive,
} from "../sources/docker_archive.ts";
import { fromOciArchive, indexOciArchive } from "../sources/oci_archive.ts";
import { fromOciLayout } from "../sources/oci_layout.ts";
import { fromRegistry, type RegistryCredentials } from "../sources/registry.ts";
import type { CliArgs } from "./args.ts";
import { UsageError } from "./errors.ts";
import type { CliSource } from "./source_grammar.ts";

/**
 * Opens a SOURCE as an image and the tag to save it under. `indexes` keeps
 * each archive's index, so that an archive named by several sources is
 * indexed once. `credentials` are the registry credentials by host (see
 * `credentialsForSources()` in credentials.ts).
 *
 * @example
 * ```ts
 * import { openSource } from "./open_source.ts";
 * import { parseArgs } from "./args.ts";
 * import { parseSource } from "./source_grammar.ts";
 * const args = parseArgs(["alpine:3.20"]);
 * const [tag, image] = await openSource(
 *   await parseSource("alpine:3.20"),
 *   args,
 *   new Map(),
 * );
 * ```
 */
export async function openSource(
  source: CliSource,
  args: CliArgs,
  indexes: Map<string, Promise<ArchiveIndex>>,
  credentials?: Record<string, RegistryCredentials>,
): Promise<[string, Image]> {
  const platform = args.platform;
  switch (source.kind) {
    case "oci":
      return [
        source.tag,
        await fromOciLayout(source.dir, source.ref, { platform }),
      ];
    case "registry":
      return [
        source.tag,
        await fromRegistry(source.reference, {
          platform,
          credentials,
          dockerConfig: args.authfile,
          insecure: args.insecure,
          allowForeignLayers: args.allowForeignLayers,
          uncompressedSizes: args.uncompressedSizes,
        }),
      ];
  }
  const key = `${source.kind}:${source.path}`;
  if (!indexes.has(key)) {
    indexes.set(
      key,
      source.kind === "docker-archive"
        ? indexDockerArchive(source.path)
        : indexOciArchive(source.path),
    );
  }
  const index = await indexes.get(key)!;
  if (source.kind === "oci-archive") {
    const image = await fromOciArchive(source.path, source.name, {
      platform,
      index,
    });
    if (!source.tag) {
      throw new UsageError(
        `source "oci-archive:${source.path}" needs a tag: oci-archive:FILE[:REF]=TAG`,
      );
    }
    return [source.tag, image];
  }
  const image = await fromDockerArchive(source.path, source.name, { index });
  const tag = source.tag ?? image.repoTags[0];
  if (!tag) {
    throw new UsageError(
      `source "docker-archive:${source.path}" has no tag there: docker-archive:FILE=TAG`,
    );
  }
  return [tag, image];
}
