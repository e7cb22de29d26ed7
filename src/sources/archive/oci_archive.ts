/**
 * Images from an OCI image layout tarball (`oci-archive:`, as written by
 * skopeo, buildah, podman or docker ≥ 25), plain or gzip-compressed. The
 * archive is indexed once; `fromOciLayout` then reads it through a file
 * system over the index, so choosing the entry and the platform works as for
 * a layout directory.
 *
 * @module
 */

import { takeBytes } from "../../util/streams.ts";
import type { Image } from "../../model/image.ts";
import type { FileSystem } from "../../runtime/fs.ts";
import {
  type ArchiveFileSystem,
  type ArchiveIndex,
  indexArchive,
} from "./archive_index.ts";
import {
  fromOciLayout,
  fromOciLayoutIndex,
  type FromOciLayoutOptions,
} from "../oci_layout.ts";
import type { ImageIndex } from "../../model/image_index.ts";
import { parseSourceRef } from "../source_ref.ts";

/** Options for `fromOciArchive`. */
export interface FromOciArchiveOptions {
  /**
   * File access with ranged reads; `node:fs` where the runtime has it.
   * @default {nodeArchiveFileSystem()}
   */
  fs?: ArchiveFileSystem;
  /**
   * The platform to take from a multi-platform index, `os/arch[/variant]`.
   * @default {"linux/amd64"}
   */
  platform?: string;
  /**
   * The archive's index from `indexOciArchive`, to read several images of
   * one archive with a single indexing pass.
   */
  index?: ArchiveIndex;
}

/** An `oci-archive:FILE[:REF][=TAG]` source, split. */
export interface OciArchiveSource {
  /** The archive file. */
  path: string;
  /** The `org.opencontainers.image.ref.name` of the index entry, if given. */
  ref?: string;
  /** The tag to save the image as, if given. */
  newTag?: string;
}

/**
 * Indexes an OCI layout archive once (one streaming pass, nothing hashed:
 * blobs are named by their digests), for several `fromOciArchive` calls.
 *
 * @example
 * ```ts
 * import { fromOciArchive, indexOciArchive } from "./oci_archive.ts";
 * const index = await indexOciArchive("images.tar");
 * const app = await fromOciArchive("images.tar", "app", { index });
 * const tool = await fromOciArchive("images.tar", "tool", { index });
 * ```
 */
export function indexOciArchive(
  path: string,
  options: Pick<FromOciArchiveOptions, "fs"> = {},
): Promise<ArchiveIndex> {
  return indexArchive(path, {
    fs: options.fs,
    label: `OCI archive "${path}"`,
  });
}

/**
 * The image an OCI layout tarball's `index.json` names: the entry whose
 * `org.opencontainers.image.ref.name` is `ref`, or the only entry when `ref`
 * is omitted; a nested index is resolved by platform (default
 * `linux/amd64`). Blobs are streamed from their offsets in the archive.
 *
 * @example
 * ```ts
 * import { fromOciArchive, save } from "../../../mod.ts";
 * const image = await fromOciArchive("app-oci.tar", "app");
 * await save([["registry.example.com/app:v1", image]]).pipeTo(new WritableStream());
 * ```
 */
export async function fromOciArchive(
  path: string,
  ref?: string,
  options: FromOciArchiveOptions = {},
): Promise<Image> {
  return await fromOciLayout(path, ref, await layoutOptions(path, options));
}

/**
 * Every platform of the entry an OCI layout tarball's `index.json` names,
 * as `fromOciLayoutIndex` reads a layout directory: an `ImageIndex`, or the
 * image itself for a single-platform entry. Reads docker ≥ 25 archives too
 * (an OCI layout beside `manifest.json`), whose entries are named by
 * `io.containerd.image.name`.
 *
 * @example
 * ```ts
 * import { fromOciArchiveIndex } from "./oci_archive.ts";
 * const app = await fromOciArchiveIndex("app-oci.tar", "app");
 * ```
 */
export async function fromOciArchiveIndex(
  path: string,
  ref?: string,
  options: FromOciArchiveOptions = {},
): Promise<Image | ImageIndex> {
  return await fromOciLayoutIndex(
    path,
    ref,
    await layoutOptions(path, options),
  );
}

// The archive as the file system of an OCI layout rooted at `path`.
async function layoutOptions(
  path: string,
  options: FromOciArchiveOptions,
): Promise<FromOciLayoutOptions> {
  const archive = options.index ?? await indexOciArchive(path, options);
  const prefix = `${path}/`;
  const find = (file: string) => {
    const member = file.startsWith(prefix)
      ? archive.get(file.slice(prefix.length))
      : undefined;
    if (!member || member.type !== "file") {
      throw Object.assign(
        new Error(`no member "${file.slice(prefix.length)}"`),
        { code: "ENOENT" },
      );
    }
    return member;
  };
  const fs: FileSystem = {
    readFile: (file) => archive.read(find(file)),
    // The layout seeks into blobs (ranges of a saved tarball): honour it.
    openRead: async (file, range) => {
      const body = await archive.open(find(file), range?.start);
      return range?.length === undefined ? body : takeBytes(body, range.length);
    },
  };
  return { fs, platform: options.platform, label: `OCI archive "${path}"` };
}

/**
 * Splits an `oci-archive:FILE[:REF][=TAG]` source (the SOURCE grammar of
 * `source_ref.ts`). FILE is the longest prefix that is an existing file, so
 * it may contain `:` and `=`; REF picks the index entry, TAG is the tag to
 * save it as.
 *
 * @example
 * ```ts
 * import { parseOciArchiveSource } from "./oci_archive.ts";
 * await parseOciArchiveSource("oci-archive:app-oci.tar:app=example.com/app:v1");
 * // { path: "app-oci.tar", ref: "app", newTag: "example.com/app:v1" }
 * ```
 */
export async function parseOciArchiveSource(
  source: string,
  isFile?: (path: string) => Promise<boolean>,
): Promise<OciArchiveSource> {
  const parts = await parseSourceRef(source, {
    transport: "oci-archive",
    isFile,
  });
  const out: OciArchiveSource = { path: parts.location };
  if (parts.name !== undefined) out.ref = parts.name;
  if (parts.newTag !== undefined) out.newTag = parts.newTag;
  return out;
}
