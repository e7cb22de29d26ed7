/**
 * Tarballs for the tests, made and read with modern-tar (not our writer):
 * small deterministic layers, a tarball's members, and a streaming tracker
 * that follows where in a tarball a consumer is without keeping the bytes.
 *
 * @module
 */

import { packTar, unpackTar } from "modern-tar";

const encoder = new TextEncoder();

/**
 * A small, deterministic layer tar (mtime 0, mode 0644, uid/gid 0) holding
 * the given files: name -> text or bytes, or `[name, bytes]` pairs.
 */
export function layerTar(
  files: Record<string, string | Uint8Array> | Iterable<[string, Uint8Array]>,
): Promise<Uint8Array> {
  const entries: [string, string | Uint8Array][] = Symbol.iterator in files
    ? [...(files as Iterable<[string, Uint8Array]>)]
    : Object.entries(files);
  return packTar(
    entries.map(([name, body]) => ({
      header: {
        name,
        size: typeof body === "string"
          ? encoder.encode(body).byteLength
          : body.byteLength,
        mtime: new Date(0),
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
      body,
    })),
  );
}

/** Whether bytes end with a tar's end: two 512-byte zero blocks. */
export function endsWithTarEnd(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 1024) return false;
  return bytes.subarray(bytes.byteLength - 1024).every((byte) => byte === 0);
}

/** A tarball's members, in order, read with modern-tar. */
export interface TarMember {
  name: string;
  data: Uint8Array;
}

/** The members of a tarball (bytes or stream). */
export async function readTar(
  tar: Uint8Array | ReadableStream<Uint8Array>,
): Promise<TarMember[]> {
  const entries = await unpackTar(tar, { strict: true });
  return entries.map((entry) => ({
    name: entry.header.name,
    data: entry.data ?? new Uint8Array(),
  }));
}

/** One member's text; fails when the member is absent or repeated. */
export function memberText(members: TarMember[], name: string): string {
  const found = members.filter((member) => member.name === name);
  if (found.length !== 1) {
    throw new Error(`expected one member "${name}", found ${found.length}`);
  }
  return new TextDecoder().decode(found[0].data);
}

/** The v1 layer directory names, in order of first appearance. */
export function v1Dirs(members: TarMember[]): string[] {
  const dirs: string[] = [];
  for (const { name } of members) {
    const slash = name.indexOf("/");
    if (slash < 0) continue;
    const dir = name.slice(0, slash);
    if (!dirs.includes(dir)) dirs.push(dir);
  }
  return dirs;
}

/** One member as the tracker saw its header. */
export interface TrackedMember {
  name: string;
  size: number;
  /** Archive offset of its first header block (PAX header included). */
  headerOffset: number;
  /** Archive offset of its body. */
  bodyOffset: number;
  /** Bytes of the header blocks (PAX header included). */
  headerLength: number;
}

/**
 * Follows a tar stream chunk by chunk without keeping its bodies: member
 * names and sizes (PAX `size` and `path` records applied), how far into the
 * current body the stream is, and whether the two zero end blocks were seen.
 */
export class TarTracker {
  /** Bytes seen. */
  offset = 0;
  /** Regular members, in order. */
  members: TrackedMember[] = [];
  /** Zero blocks seen at a header position, in a row. */
  zeroBlocks = 0;
  /** The archive's end (two zero blocks) was seen. */
  ended = false;
  /** Called with each piece of a regular member's body. */
  onBody?: (member: TrackedMember, bytes: Uint8Array) => void;

  #block = new Uint8Array(512);
  #blockFill = 0;
  // Remaining bytes of the current body / PAX records, then of padding.
  #bodyLeft = 0;
  #padLeft = 0;
  #current: TrackedMember | undefined;
  #pax: Uint8Array | undefined;
  #paxFill = 0;
  #paxRecords: Record<string, string> = {};
  #headerStart = -1;

  /** The member whose body is being read, if any. */
  get current(): TrackedMember | undefined {
    return this.#bodyLeft > 0 || this.#padLeft > 0 ? this.#current : undefined;
  }

  /** Bytes of the current member's body received so far. */
  get bodyReceived(): number {
    const member = this.current;
    return member ? Math.min(this.offset - member.bodyOffset, member.size) : 0;
  }

  /** Feeds the next chunk. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.byteLength) {
      if (this.#bodyLeft > 0) {
        const n = Math.min(this.#bodyLeft, chunk.byteLength - i);
        const piece = chunk.subarray(i, i + n);
        if (this.#pax) {
          this.#pax.set(piece, this.#paxFill);
          this.#paxFill += n;
        } else if (this.#current) {
          this.onBody?.(this.#current, piece);
        }
        this.#bodyLeft -= n;
        this.offset += n;
        i += n;
        if (this.#bodyLeft === 0 && this.#pax) this.#readPax();
        continue;
      }
      if (this.#padLeft > 0) {
        const n = Math.min(this.#padLeft, chunk.byteLength - i);
        this.#padLeft -= n;
        this.offset += n;
        i += n;
        continue;
      }
      const n = Math.min(512 - this.#blockFill, chunk.byteLength - i);
      if (this.#blockFill === 0 && this.#headerStart < 0) {
        this.#headerStart = this.offset;
      }
      this.#block.set(chunk.subarray(i, i + n), this.#blockFill);
      this.#blockFill += n;
      this.offset += n;
      i += n;
      if (this.#blockFill === 512) {
        this.#blockFill = 0;
        this.#readHeader();
      }
    }
  }

  #readHeader(): void {
    const block = this.#block;
    if (block.every((byte) => byte === 0)) {
      this.#headerStart = -1;
      if (++this.zeroBlocks >= 2) this.ended = true;
      return;
    }
    if (this.ended) throw new Error("tar: data after the end blocks");
    this.zeroBlocks = 0;
    let checksum = 0;
    for (let j = 0; j < 512; j++) {
      checksum += j >= 148 && j < 156 ? 32 : block[j];
    }
    const stored = parseInt(field(block, 148, 8), 8);
    if (stored !== checksum) {
      throw new Error(`tar: bad header checksum at ${this.offset - 512}`);
    }
    const type = String.fromCharCode(block[156]);
    const size = parseInt(field(block, 124, 12) || "0", 8);
    if (type === "x") {
      this.#pax = new Uint8Array(size);
      this.#paxFill = 0;
      this.#bodyLeft = size;
      this.#padLeft = (512 - size % 512) % 512;
      if (size === 0) this.#readPax();
      return;
    }
    if (type !== "0" && type !== "\0") {
      throw new Error(`tar: unexpected member type ${JSON.stringify(type)}`);
    }
    const records = this.#paxRecords;
    this.#paxRecords = {};
    const member: TrackedMember = {
      name: records.path ?? field(block, 0, 100),
      size: records.size !== undefined ? Number(records.size) : size,
      headerOffset: this.#headerStart,
      bodyOffset: this.offset,
      headerLength: this.offset - this.#headerStart,
    };
    this.#headerStart = -1;
    this.members.push(member);
    this.#current = member;
    this.#bodyLeft = member.size;
    this.#padLeft = (512 - member.size % 512) % 512;
  }

  #readPax(): void {
    const text = new TextDecoder().decode(this.#pax);
    this.#pax = undefined;
    let at = 0;
    while (at < text.length) {
      const space = text.indexOf(" ", at);
      const length = Number(text.slice(at, space));
      const record = text.slice(space + 1, at + length - 1);
      const eq = record.indexOf("=");
      this.#paxRecords[record.slice(0, eq)] = record.slice(eq + 1);
      at += length;
    }
  }
}

function field(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return new TextDecoder().decode(block.subarray(start, end)).trim();
}
