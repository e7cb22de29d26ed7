/**
 * An index of a tar archive (plain or gzip-compressed), made in one streaming
 * pass with `TarReader` (which bounds every name record; see there why it is
 * not modern-tar's decoder), and ranged reads of its members afterwards.
 * Shared by `fromDockerArchive` and `fromOciArchive`. What one index keeps
 * is bounded too: `MAX_ARCHIVE_MEMBERS` members, `MAX_ARCHIVE_NAME_BYTES` of
 * names.
 *
 * How members are read: a plain tar is read from the member's offset with a
 * positioned file read, so nothing before it is touched. A gzip stream cannot
 * be entered in the middle, and gunzipping it again from its start for each
 * member cost layers × the bytes before them, both chosen by whoever made
 * the archive (a 257 KB file with a 256 MiB run of zeros before 16 layers
 * took 7.6 s). So, as containers/image does (it decompresses a compressed
 * `docker-archive` to a temporary file once), the index pass writes the
 * gunzipped tar to a spool (an unlinked temp file, `runtime/spool.ts`) as it
 * reads it, and members are then read from there by offset: one gunzip per
 * archive, disk use its uncompressed size, as `gunzip` first would need.
 * (gzip restart points would save the disk but need inflate state at bit
 * offsets, which no decompressor here exposes.) Where no temp file can be
 * made (no `node:fs`, no permission), members are gunzipped again from the
 * start, within a bound: `MAX_REGUNZIP_FACTOR` times the tar's length in all.
 *
 * @module
 */

import { concatBytes, mapErrors, skipBytes } from "../../util/streams.ts";
import { DockerSaveError } from "../../model/errors.ts";
import {
  type FileSystem,
  isNotFound,
  nodeFileSystem,
} from "../../runtime/fs.ts";
import { createGunzip } from "../../runtime/decompress.ts";
import { createSpool, type Spool } from "../../runtime/spool.ts";
import { createSha256, type Hasher } from "../../runtime/hash.ts";
import { MAX_JSON_BYTES } from "../bounded_read.ts";
import { type TarEntry, TarReader } from "./tar_reader.ts";

/** The file access an archive source needs: whole or ranged streaming reads. */
export type ArchiveFileSystem = Pick<FileSystem, "openRead">;

/**
 * One member of an indexed archive: its tar entry (offsets in the
 * uncompressed tar stream) and what the index pass learnt of its body.
 */
export interface ArchiveMember extends TarEntry {
  /** Position among the archive's members, from 0. */
  index: number;
  /** The path, normalised: no `./` or leading `/`, no trailing `/`. */
  name: string;
  /** `sha256:<hex>` of the body, when the index pass hashed it. */
  digest?: string;
  /** The body's first bytes (up to 4), to tell gzip or zstd from a tar. */
  head: Uint8Array;
  /** The whole body, for small JSON-looking members kept in memory. */
  data?: Uint8Array;
}

/** Options for `indexArchive`. */
export interface IndexArchiveOptions {
  /**
   * File access; `node:fs` where the runtime has it.
   * @default {nodeArchiveFileSystem()}
   */
  fs?: ArchiveFileSystem;
  /**
   * Which members to hash in the index pass (their `digest`).
   * @default {() => false}
   */
  hash?: (name: string) => boolean;
  /**
   * What error messages call the archive.
   * @default {`archive "${path}"`}
   */
  label?: string;
  /**
   * Whether a gzip-compressed archive is gunzipped once into a temporary
   * file while it is indexed (else each member read gunzips it again, up to
   * `MAX_REGUNZIP_FACTOR` times its length in all).
   * @default {true}
   */
  spool?: boolean;
}

/** What the index pass learnt besides the members. */
export interface ArchiveIndexStore {
  /** The gunzipped tar, for a gzip-compressed archive spooled. */
  spool?: Spool;
  /** The tar's (uncompressed) length up to its end, as read. */
  tarLength?: number;
}

/**
 * Members whose body starts like JSON and is at most this big are kept in
 * memory by the index pass, while the archive's kept bytes stay within
 * `KEEP_BUDGET`: so metadata is not read (for gzip: gunzipped) again, and a
 * hostile archive of many JSON-looking members costs at most the budget.
 * Larger or later ones are read again when asked for.
 */
const KEEP_LIMIT = 1024 * 1024;
/** The most bytes one archive's index keeps (see `KEEP_LIMIT`). */
const KEEP_BUDGET = 8 * 1024 * 1024;
/** How many links `ArchiveIndex.get` follows before giving up. */
const MAX_LINKS = 16;
/**
 * The most members one archive's index keeps: 100,000 (a `docker save` of
 * hundreds of images has a few thousand). With `MAX_ARCHIVE_NAME_BYTES`, what
 * an index holds stays in the tens of MiB whatever the archive says.
 */
export const MAX_ARCHIVE_MEMBERS = 100_000;
/** The most characters of names and link targets one index keeps: 16 Mi. */
export const MAX_ARCHIVE_NAME_BYTES = 16 * 1024 * 1024;
/**
 * Without a spool, the most bytes all member reads of a gzip-compressed
 * archive may gunzip, as a multiple of its tar's length: 16 (enough for an
 * archive of 32 evenly sized layers saved once).
 */
export const MAX_REGUNZIP_FACTOR = 16;

/**
 * A tar archive's members, learnt in one pass, and reads of their bodies.
 *
 * @example
 * ```ts
 * import { indexArchive } from "./archive_index.ts";
 * const archive = await indexArchive("app.tar");
 * const manifest = archive.get("manifest.json");
 * if (manifest) console.log(new TextDecoder().decode(await archive.read(manifest)));
 * ```
 */
export class ArchiveIndex {
  /** The archive file. */
  readonly path: string;
  /** Whether the file is a gzip-compressed tar. */
  readonly compression: "none" | "gzip";
  /** Every member, in archive order. */
  readonly members: readonly ArchiveMember[];
  /** What error messages call the archive. */
  readonly label: string;
  #fs: ArchiveFileSystem;
  #byName = new Map<string, ArchiveMember>();
  #store: ArchiveIndexStore;
  #regunzipped = 0;

  /**
   * An index of members already learnt; `indexArchive` makes one.
   *
   * @param path the archive file
   * @param compression how the file is compressed
   * @param members its members, in order
   * @param fs file access for later reads
   * @param label what error messages call the archive
   * @param store the spool and tar length the index pass left
   */
  constructor(
    path: string,
    compression: "none" | "gzip",
    members: readonly ArchiveMember[],
    fs: ArchiveFileSystem,
    label: string,
    store: ArchiveIndexStore = {},
  ) {
    this.#store = store;
    this.path = path;
    this.compression = compression;
    this.members = members;
    this.label = label;
    this.#fs = fs;
    // A later member of the same name replaces an earlier one, as on extraction.
    for (const member of members) this.#byName.set(member.name, member);
  }

  /**
   * The member at `name` (normalised), following symbolic and hard links to
   * a regular member; `undefined` when there is none.
   */
  get(name: string): ArchiveMember | undefined {
    let member = this.#byName.get(normalizePath(name));
    for (let hops = 0; member && hops < MAX_LINKS; hops++) {
      if (member.type === "symlink" && member.linkname !== undefined) {
        const base = member.name.includes("/")
          ? member.name.slice(0, member.name.lastIndexOf("/") + 1)
          : "";
        member = member.linkname.startsWith("/")
          ? this.#byName.get(normalizePath(member.linkname))
          : this.#byName.get(normalizePath(base + member.linkname));
      } else if (member.type === "link" && member.linkname !== undefined) {
        member = this.#byName.get(normalizePath(member.linkname));
      } else return member;
    }
    return undefined;
  }

  /**
   * A small member's whole body: kept bytes, or read now. A member over
   * `limit` bytes (by its header) is refused before anything is read.
   */
  async read(
    member: ArchiveMember,
    limit: number = MAX_JSON_BYTES,
  ): Promise<Uint8Array> {
    if (member.size > limit) {
      throw new DockerSaveError(
        "BAD_LAYOUT",
        `Cannot read "${member.name}" of ${this.label}: it has ${member.size} bytes, more than the ${limit} a JSON member may have`,
      );
    }
    if (member.data) return member.data;
    return new Uint8Array(
      await new Response(await this.#open(member)).arrayBuffer(),
    );
  }

  /**
   * A member's body as a pull-based stream of exactly `member.size` bytes:
   * its kept bytes, or read from its offset (see the module notes for gzip
   * archives); from `from` on, when given: a plain archive seeks there, a
   * gzip one reads and drops what comes before. Cancelling the stream closes
   * the file.
   */
  open(
    member: ArchiveMember,
    from = 0,
  ): Promise<ReadableStream<Uint8Array>> {
    if (member.data) {
      return Promise.resolve(streamOf(member.data.subarray(from)));
    }
    return this.#open(member, from);
  }

  async #open(
    member: ArchiveMember,
    from = 0,
  ): Promise<ReadableStream<Uint8Array>> {
    if (member.size - from <= 0) return new Blob([]).stream();
    const what = `"${member.name}" of ${this.label}`;
    let stream: ReadableStream<Uint8Array>;
    try {
      stream = await this.#openBody(member, from);
    } catch (error) {
      if (error instanceof DockerSaveError) throw error;
      throw new DockerSaveError(
        "BLOB_NOT_FOUND",
        `Cannot read ${what}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    // Read errors (a file cut short, corrupt gzip) name the member.
    return mapErrors(
      stream,
      (error) =>
        error instanceof DockerSaveError ? error : new DockerSaveError(
          "BAD_LAYOUT",
          `Cannot read ${what}: ${(error as Error).message}`,
          { cause: error },
        ),
    );
  }

  async #openBody(
    member: ArchiveMember,
    from: number,
  ): Promise<ReadableStream<Uint8Array>> {
    if (this.compression === "none") {
      return await this.#fs.openRead(this.path, {
        start: member.offset + from,
        length: member.size - from,
      });
    }
    const { spool, tarLength } = this.#store;
    if (spool) {
      return spool.openRead({
        start: member.offset + from,
        length: member.size - from,
      });
    }
    this.#regunzipped += member.offset + member.size;
    const budget = MAX_REGUNZIP_FACTOR * (tarLength ?? Infinity);
    if (this.#regunzipped > budget) {
      throw new DockerSaveError(
        "ARCHIVE_LIMIT",
        `Cannot read "${member.name}" of ${this.label}: reading its members would gunzip more than ${MAX_REGUNZIP_FACTOR} times its ${tarLength} bytes; gunzip it first`,
      );
    }
    const whole = await this.#openGzipSlice(member.offset, member.size);
    return from === 0 ? whole : skipBytes(whole, from);
  }

  /**
   * Frees what the index holds beyond memory (a spooled archive's temporary
   * file); its members cannot be read afterwards. Done on its own once the
   * index is garbage-collected.
   */
  async close(): Promise<void> {
    await this.#store.spool?.close();
  }

  // The file stream is piped by hand so that cancelling the slice can wait
  // until the file itself is cancelled (closed).
  async #openGzipSlice(
    offset: number,
    size: number,
  ): Promise<ReadableStream<Uint8Array>> {
    const file = await this.#fs.openRead(this.path);
    const gunzip = await createGunzip();
    const abort = new AbortController();
    const piped = file.pipeTo(gunzip.writable, { signal: abort.signal })
      .catch(() => {});
    return slice(gunzip.readable, offset, size, async () => {
      abort.abort();
      await piped;
    });
  }
}

/**
 * Indexes a tar archive, plain or gzip-compressed, in one streaming pass:
 * each member's name, type, size and offsets, its first bytes, its sha256
 * when `options.hash` asks for it, and the whole body of small JSON-looking
 * members (manifests, configs, indexes; at most 1 MiB each and 8 MiB in
 * all). Layer bodies are never held.
 *
 * @example
 * ```ts
 * import { indexArchive } from "./archive_index.ts";
 * const archive = await indexArchive("app.tar", { hash: (name) => name.endsWith("/layer.tar") });
 * for (const member of archive.members) console.log(member.name, member.offset, member.digest);
 * ```
 */
export async function indexArchive(
  path: string,
  options: IndexArchiveOptions = {},
): Promise<ArchiveIndex> {
  const fs = options.fs ?? await nodeArchiveFileSystem();
  if (!fs) {
    throw new TypeError(
      "Cannot open archive: no file system; pass options.fs",
    );
  }
  const label = options.label ?? `archive "${path}"`;
  const wantHash = options.hash ?? (() => false);
  let sniffed: Awaited<ReturnType<typeof sniffGzip>>;
  try {
    sniffed = await sniffGzip(await fs.openRead(path));
  } catch (error) {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${label}: ${
        isNotFound(error) ? "no such file" : (error as Error).message
      }`,
      { cause: error },
    );
  }
  let plain = sniffed.stream;
  let spool: Spool | undefined;
  if (sniffed.gzip) {
    plain = plain.pipeThrough(await createGunzip());
    spool = options.spool ?? true ? await createSpool() : undefined;
    if (spool) plain = spooled(plain, spool, label);
  }
  const tar = new TarReader(plain, label);
  const members: ArchiveMember[] = [];
  const budget = { left: KEEP_BUDGET };
  let nameBytes = 0;
  try {
    for (;;) {
      const entry = await tar.next();
      if (!entry) break;
      nameBytes += entry.name.length + (entry.linkname?.length ?? 0);
      if (members.length >= MAX_ARCHIVE_MEMBERS) {
        throw new DockerSaveError(
          "ARCHIVE_LIMIT",
          `Cannot read ${label}: it has more than ${MAX_ARCHIVE_MEMBERS} members`,
        );
      }
      if (nameBytes > MAX_ARCHIVE_NAME_BYTES) {
        throw new DockerSaveError(
          "ARCHIVE_LIMIT",
          `Cannot read ${label}: its member names have more than ${MAX_ARCHIVE_NAME_BYTES} characters in all`,
        );
      }
      members.push(
        await indexMember(tar, entry, members.length, wantHash, budget),
      );
    }
  } catch (error) {
    await tar.cancel(error);
    await spool?.close().catch(() => {});
    if (error instanceof DockerSaveError) throw error;
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${label}: it is not a valid ${
        sniffed.gzip ? "gzip-compressed " : ""
      }tar archive (${(error as Error).message})`,
      { cause: error },
    );
  }
  return new ArchiveIndex(
    path,
    sniffed.gzip ? "gzip" : "none",
    members,
    fs,
    label,
    { spool, tarLength: tar.position },
  );
}

// The stream passed on, each chunk written to the spool first.
function spooled(
  stream: ReadableStream<Uint8Array>,
  spool: Spool,
  label: string,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      try {
        await spool.write(value);
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        throw new DockerSaveError(
          "BAD_LAYOUT",
          `Cannot gunzip ${label} into a temporary file: ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
      controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

async function indexMember(
  tar: TarReader,
  entry: TarEntry,
  index: number,
  wantHash: (name: string) => boolean,
  budget: { left: number },
): Promise<ArchiveMember> {
  const member: ArchiveMember = {
    index,
    name: normalizePath(entry.name),
    type: entry.type,
    size: entry.size,
    headerOffset: entry.headerOffset,
    offset: entry.offset,
    head: new Uint8Array(0),
  };
  if (entry.linkname !== undefined) member.linkname = entry.linkname;
  const first = await tar.body();
  if (first === undefined) return member;
  const hasher: Hasher | undefined = member.type === "file" &&
      wantHash(member.name)
    ? await createSha256()
    : undefined;
  const keep = member.size <= Math.min(KEEP_LIMIT, budget.left) &&
    looksLikeJson(first);
  if (keep) budget.left -= member.size;
  const kept: Uint8Array[] | undefined = keep ? [] : undefined;
  const head: Uint8Array[] = [];
  let headLength = 0;
  // Body chunks are views of the stream's chunks: kept ones are copied.
  for (
    let bytes: Uint8Array | undefined = first;
    bytes !== undefined;
    bytes = await tar.body()
  ) {
    if (headLength < 4) {
      head.push(bytes.slice(0, 4 - headLength));
      headLength += head[head.length - 1].byteLength;
    }
    await hasher?.update(bytes);
    kept?.push(bytes.slice());
    if (!hasher && !kept && headLength >= 4) break; // next() skips the rest
  }
  member.head = concatBytes(head);
  if (hasher) member.digest = `sha256:${await hasher.hexDigest()}`;
  if (kept) member.data = concatBytes(kept);
  return member;
}

/**
 * The `node:fs` archive file system (positioned reads), or `undefined` where
 * the runtime has none.
 *
 * @example
 * ```ts
 * import { nodeArchiveFileSystem } from "./archive_index.ts";
 * const fs = await nodeArchiveFileSystem();
 * const tail = await fs?.openRead("app.tar", { start: 512, length: 1024 });
 * ```
 */
export function nodeArchiveFileSystem(): Promise<
  ArchiveFileSystem | undefined
> {
  return nodeFileSystem();
}

/**
 * A path inside an archive, normalised: `./` and empty segments dropped,
 * `..` resolved, no leading or trailing `/`.
 *
 * @example
 * ```ts
 * import { normalizePath } from "./archive_index.ts";
 * normalizePath("./blobs//sha256/ab/"); // "blobs/sha256/ab"
 * ```
 */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}

/**
 * The compression a member's first bytes show: gzip (`1f 8b`), zstd
 * (`28 b5 2f fd`), or none.
 *
 * @example
 * ```ts
 * import { magicCompression } from "./archive_index.ts";
 * magicCompression(new Uint8Array([0x1f, 0x8b, 8, 0])); // "gzip"
 * ```
 */
export function magicCompression(
  head: Uint8Array,
): "none" | "gzip" | "zstd" {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (
    head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f &&
    head[3] === 0xfd
  ) return "zstd";
  return "none";
}

// Whether the stream starts with the gzip magic; the stream is given back
// whole.
async function sniffGzip(
  stream: ReadableStream<Uint8Array>,
): Promise<{ gzip: boolean; stream: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const head: Uint8Array[] = [];
  let length = 0;
  let done = false;
  while (length < 2) {
    const next = await reader.read();
    if (next.done) {
      done = true;
      break;
    }
    head.push(next.value);
    length += next.value.byteLength;
  }
  const first = concatBytes(head);
  const gzip = first[0] === 0x1f && first[1] === 0x8b;
  let pending: Uint8Array[] = head;
  return {
    gzip,
    stream: new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pending.length) {
          for (const chunk of pending) controller.enqueue(chunk);
          pending = [];
          return;
        }
        if (done) return controller.close();
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 }),
  };
}

// `length` bytes of a stream from `start`; what comes before is discarded as
// it streams. Once the slice is out, or on cancel, the source is cancelled
// and `stop` awaited.
function slice(
  stream: ReadableStream<Uint8Array>,
  start: number,
  length: number,
  stop: () => Promise<void>,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let skip = start;
  let remaining = length;
  const end = async (reason?: unknown) => {
    await reader.cancel(reason).catch(() => {});
    await stop();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (remaining === 0) {
          await end();
          controller.close();
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          await stop();
          controller.error(
            new RangeError(
              `the archive ends ${remaining} bytes before the member does`,
            ),
          );
          return;
        }
        if (skip >= value.byteLength) {
          skip -= value.byteLength;
          continue;
        }
        const chunk = value.subarray(skip, skip + remaining);
        skip = 0;
        remaining -= chunk.byteLength;
        controller.enqueue(chunk);
        return;
      }
    },
    cancel: (reason) => end(reason),
  }, { highWaterMark: 0 });
}

// Kept bytes as a one-chunk stream.
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.byteLength) controller.enqueue(bytes);
      controller.close();
    },
  });
}

function looksLikeJson(chunk: Uint8Array): boolean {
  for (const byte of chunk) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) {
      continue;
    }
    return byte === 0x7b || byte === 0x5b; // { or [
  }
  return false;
}
