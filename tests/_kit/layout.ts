/**
 * OCI layouts for the tests: the golden layouts' files, an image's or an
 * index's files, written as a directory or packed as a tarball, blobs added
 * by content, and read counters that stop a runaway reader instead of
 * letting it hang.
 *
 * @module
 */

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { packTar } from "modern-tar";
import type { Image } from "../../src/model/image.ts";
import { type ImageIndex, isImageIndex } from "../../src/model/image_index.ts";
import type { ArchiveIndex } from "../../src/sources/archive/archive_index.ts";
import type { FileSystem } from "../../src/runtime/fs.ts";
import { readAll } from "./bytes.ts";
import { digestOf } from "./digest.ts";
import { MEDIA } from "./format.ts";

const encoder = new TextEncoder();

/** A layout's files: relative path -> bytes. */
export type LayoutFiles = Map<string, Uint8Array>;

/** The files of an OCI layout directory, relative paths and bytes. */
export function layoutFiles(dir: string): [string, Uint8Array][] {
  const blobs = `${dir}/blobs/sha256`;
  return [
    ["oci-layout", new Uint8Array(readFileSync(`${dir}/oci-layout`))],
    ["index.json", new Uint8Array(readFileSync(`${dir}/index.json`))],
    ...readdirSync(blobs).map((hex): [string, Uint8Array] => [
      `blobs/sha256/${hex}`,
      new Uint8Array(readFileSync(`${blobs}/${hex}`)),
    ]),
  ];
}

/** A tar of files, with directory entries, names optionally `./`-prefixed. */
export function layoutTar(
  files: Iterable<[string, Uint8Array]>,
  dotSlash = false,
): Promise<Uint8Array> {
  const prefix = dotSlash ? "./" : "";
  const dirs = dotSlash ? ["./", "./blobs/", "./blobs/sha256/"] : [
    "blobs/",
    "blobs/sha256/",
  ];
  return packTar([
    ...dirs.map((name) => ({
      header: { name, size: 0, type: "directory" as const },
    })),
    ...[...files].map(([name, body]) => ({
      header: { name: `${prefix}${name}`, size: body.byteLength },
      body,
    })),
  ]);
}

/** Writes files under `dir` as a layout directory. */
export function writeLayout(dir: string, files: LayoutFiles): void {
  for (const [name, bytes] of files) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
}

/** A descriptor as layouts write them. */
export interface TestDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/**
 * Adds `content` (bytes, or a value written as JSON) as a blob named by its
 * sha256 and returns its descriptor.
 */
export function addBlob(
  files: LayoutFiles,
  mediaType: string,
  content: unknown,
): TestDescriptor {
  const bytes = content instanceof Uint8Array
    ? content
    : encoder.encode(JSON.stringify(content));
  const digest = digestOf(bytes);
  files.set(`blobs/sha256/${digest.slice(7)}`, bytes);
  return { mediaType, digest, size: bytes.byteLength };
}

/**
 * The files of an OCI layout whose one index entry, named `ref`, is an
 * image or an index (each child's blobs too), every blob byte for byte.
 */
export async function itemLayoutFiles(
  ref: string,
  item: Image | ImageIndex,
): Promise<LayoutFiles> {
  const files: LayoutFiles = new Map();
  const put = (mediaType: string, bytes: Uint8Array) =>
    addBlob(files, mediaType, bytes);
  const putAll = async (item: Image | ImageIndex) => {
    if (isImageIndex(item)) {
      const index = await item.index();
      for (const entry of index.manifests) {
        await putAll((await item.child(entry))!);
      }
      return put(index.mediaType ?? MEDIA.ociIndex, await item.rawIndex());
    }
    const manifest = await item.manifest();
    put(manifest.config.mediaType, await item.rawConfig());
    for (const layer of manifest.layers) {
      put(layer.mediaType, await readAll(await item.openLayer(layer)));
    }
    return put(
      manifest.mediaType ?? MEDIA.ociManifest,
      await item.rawManifest(),
    );
  };
  const { mediaType, digest, size } = await putAll(item);
  files.set("oci-layout", encoder.encode('{"imageLayoutVersion":"1.0.0"}'));
  files.set(
    "index.json",
    encoder.encode(JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType,
        digest,
        size,
        annotations: { "org.opencontainers.image.ref.name": ref },
      }],
    })),
  );
  return files;
}

/** Writes `item` as an OCI layout in `dir` (see `itemLayoutFiles`). */
export async function writeItemLayout(
  dir: string,
  ref: string,
  item: Image | ImageIndex,
): Promise<void> {
  writeLayout(dir, await itemLayoutFiles(ref, item));
}

/** Counts of what a reader read; it throws past `limit` reads. */
export interface ReadCount {
  /** Files or members opened or read whole. */
  reads: number;
  /** Bytes handed out. */
  bytes: number;
}

function counter(limit: number) {
  const count: ReadCount = { reads: 0, bytes: 0 };
  return {
    count,
    tick() {
      if (++count.reads > limit) {
        throw new Error(`more than ${limit} reads: the reader does not stop`);
      }
    },
    counted(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
      return stream.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            count.bytes += chunk.byteLength;
            controller.enqueue(chunk);
          },
        }),
      );
    },
  };
}

/**
 * A file system that counts reads and bytes, and fails the read after
 * `limit` of them (so a reader that loops fails rather than hangs).
 */
export function countingFs(
  base: FileSystem,
  limit = 200,
): { fs: FileSystem; count: ReadCount } {
  const { count, tick, counted } = counter(limit);
  return {
    count,
    fs: {
      async readFile(path) {
        tick();
        const bytes = await base.readFile(path);
        count.bytes += bytes.byteLength;
        return bytes;
      },
      async openRead(path, range) {
        tick();
        return counted(await base.openRead(path, range));
      },
    },
  };
}

/**
 * Makes an archive index count member reads and bytes, failing past `limit`
 * reads; its members' kept bytes count as read too.
 */
export function countArchiveReads(
  index: ArchiveIndex,
  limit = 200,
): ReadCount {
  const { count, tick, counted } = counter(limit);
  const read = index.read.bind(index);
  const open = index.open.bind(index);
  index.read = async (...args: Parameters<ArchiveIndex["read"]>) => {
    tick();
    const bytes = await read(...args);
    count.bytes += bytes.byteLength;
    return bytes;
  };
  index.open = async (...args: Parameters<ArchiveIndex["open"]>) => {
    tick();
    return counted(await open(...args));
  };
  return count;
}
