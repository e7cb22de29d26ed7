/**
 * Opens split SOURCE arguments as images, with the options of the command
 * line.
 *
 * @module
 */

import type { Image } from "../model/image.ts";
import { type ImageIndex, selectPlatforms } from "../model/image_index.ts";
import type { ArchiveIndex } from "../sources/archive/archive_index.ts";
import { parseIndexManifest } from "../model/index_manifest.ts";
import {
  CONTAINERD_NAME_ANNOTATION,
  REF_NAME_ANNOTATION,
} from "../model/oci_layout_names.ts";
import { checkImagePlatform } from "../model/platform.ts";
import { parseTag } from "../model/tag.ts";
import {
  fromDockerArchive,
  indexDockerArchive,
} from "../sources/archive/docker_archive.ts";
import {
  fromOciArchive,
  fromOciArchiveIndex,
  indexOciArchive,
} from "../sources/archive/oci_archive.ts";
import { fromOciLayout, fromOciLayoutIndex } from "../sources/oci_layout.ts";
import {
  fromRegistry,
  fromRegistryIndex,
  type MirrorAnswer,
  type RegistryCredentials,
  type RetryNotice,
} from "../sources/registry/pull.ts";
import { type CliArgs, platformSelection } from "./args.ts";
import { UsageError } from "./errors.ts";
import { untrustedText } from "../util/untrusted_text.ts";
import type { CliSource } from "./source_grammar.ts";

/**
 * Opens a SOURCE as an image and the tag to save it under; with a
 * `--platform` of several platforms (`all`, `available`, a list), as the
 * image index of those platforms (or the image, for a single-platform
 * source). `indexes` keeps
 * each archive's index, so that an archive named by several sources is
 * indexed once. `credentials` are the registry credentials by host (see
 * `credentialsForSources()` in credentials.ts); `onRetry` is told of each
 * registry request retried.
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
  onRetry?: (notice: RetryNotice) => void,
): Promise<[string, Image | ImageIndex]> {
  const selection = platformSelection(args.platform);
  const platform = selection ? undefined : args.platform;
  // An index narrowed to the platforms asked for; a single image must be of
  // one of them (a list naming others is PLATFORM_NOT_FOUND).
  const select = (found: Image | ImageIndex) =>
    selectPlatforms(found, selection!);
  switch (source.kind) {
    case "oci":
      return [
        source.tag,
        selection
          ? await select(await fromOciLayoutIndex(source.dir, source.ref))
          : await fromOciLayout(source.dir, source.ref, { platform }),
      ];
    case "registry": {
      const options = {
        platform,
        credentials,
        dockerConfig: args.authfile,
        insecure: args.insecure,
        allowForeignLayers: args.allowForeignLayers,
        uncompressedSizes: args.uncompressedSizes,
        certDir: args.certDir,
        proxy: args.proxy,
        retry: { onRetry },
        registryMirrors: args.registryMirrors,
        registriesConf: args.registriesConf,
        onMirror: args.quiet ? undefined : sayWhichAnswered,
      };
      return [
        source.tag,
        selection
          ? await select(await fromRegistryIndex(source.reference, options))
          : await fromRegistry(source.reference, options),
      ];
    }
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
  // A docker ≥ 25 archive is an OCI layout too: its index keeps every
  // platform the archive holds.
  const multi = selection &&
    (source.kind === "oci-archive" || index.get("index.json"));
  if (multi) {
    const found = await select(
      await fromOciArchiveIndex(source.path, source.name, { index }),
    );
    // A docker archive's image keeps its tag there (manifest.json's
    // RepoTags), as it does without --platform.
    const tag = source.tag ?? source.name ??
      (source.kind === "docker-archive"
        ? (await fromDockerArchive(source.path, undefined, { index }))
          .repoTags[0]
        : await onlyEntryName(index, source.path));
    if (!tag) {
      throw new UsageError(
        `source "${source.kind}:${source.path}" needs a tag: ${source.kind}:FILE[:REF]=TAG`,
      );
    }
    return [tag, found];
  }
  if (source.kind === "oci-archive") {
    const image = await fromOciArchive(source.path, source.name, {
      platform,
      index,
    });
    const tag = source.tag ?? await onlyEntryName(index, source.path);
    if (!tag) {
      throw new UsageError(
        `source "oci-archive:${source.path}" needs a tag: oci-archive:FILE[:REF]=TAG`,
      );
    }
    return [tag, image];
  }
  const image = await fromDockerArchive(source.path, source.name, { index });
  // The archive's image holds one platform: --platform must name it, as for
  // a layout's or a registry's single image.
  if (selection) await selectPlatforms(image, selection);
  else if (platform !== undefined) {
    const what = `docker archive "${untrustedText(source.path)}"`;
    checkImagePlatform(await image.rawConfig(), platform, what);
  }
  const tag = source.tag ?? image.repoTags[0];
  if (!tag) {
    throw new UsageError(
      `source "docker-archive:${source.path}" has no tag there: docker-archive:FILE=TAG`,
    );
  }
  return [tag, image];
}

// The name an OCI archive's only index entry gives its image, as a
// docker archive's RepoTags does: its ref.name when that is a whole
// REPO:TAG (ours, skopeo's `oci-archive:FILE:NAME`), else docker ≥ 25's
// io.containerd.image.name (its ref.name is the bare tag). `undefined` when
// the archive has several entries or no usable name.
async function onlyEntryName(
  index: ArchiveIndex,
  path: string,
): Promise<string | undefined> {
  const member = index.get("index.json");
  if (!member) return undefined;
  const { manifests } = parseIndexManifest(
    await index.read(member),
    `index.json of OCI archive "${path}"`,
    "BAD_LAYOUT",
  );
  if (manifests.length !== 1) return undefined;
  const annotations = manifests[0].annotations ?? {};
  return [
    annotations[REF_NAME_ANNOTATION],
    annotations[CONTAINERD_NAME_ANNOTATION],
  ].find((name) => name !== undefined && isWholeTag(name));
}

function isWholeTag(name: string): boolean {
  try {
    return parseTag(name).tag !== undefined;
  } catch {
    return false;
  }
}

// One line on stderr per pull that had mirrors: which one answered, and why
// the ones before it did not.
function sayWhichAnswered(answer: MirrorAnswer): void {
  const from = answer.mirror
    ? `mirror ${answer.servedBy}`
    : `${answer.servedBy} (no mirror answered)`;
  const failed = answer.failures.length
    ? `; ${answer.failures.join("; ")}`
    : "";
  console.error(`docker-save: ${answer.reference} from ${from}${failed}`);
}
