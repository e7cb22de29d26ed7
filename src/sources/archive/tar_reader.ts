/**
 * A streaming tar reader for indexing archives whose bytes come from anyone:
 * ustar, PAX (`x`) and GNU long-name (`L`, `K`) headers, with every record
 * and name bounded, and each entry's exact header and body offsets.
 *
 * Why not modern-tar's decoder (still used to write tars in the tests):
 * its limits cannot be set from outside. It accepts PAX and GNU records of
 * up to 8 MiB and merges a PAX *global* header's `path` into every later
 * entry, so a 7 KB gzipped archive (one global path, then many tiny
 * members) grew to gigabytes of names. Bounding it from outside would mean
 * parsing every header anyway (a header's place depends on the sizes, PAX
 * records included, before it) and rewriting global headers' bytes. So the
 * headers are read here, following Go's `archive/tar`: PAX and GNU records
 * are capped at 1 MiB (its `maxSpecialFileSize`), and a global header is
 * never merged into later entries (Go hands it out as an entry of its own;
 * nothing in an image is named by one, so it is passed over here).
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";

/**
 * The most bytes of one PAX (`x`, `g`) or GNU long-name (`L`, `K`) record:
 * 1 MiB, as Go's `archive/tar`.
 */
export const MAX_TAR_RECORD_BYTES = 1024 * 1024;

/** The longest member name or link target: 4096, Linux's `PATH_MAX`. */
export const MAX_TAR_NAME_LENGTH = 4096;

/** One entry of a tar stream, as `TarReader.next` gives it. */
export interface TarEntry {
  /** The path as stored (PAX `path` or GNU long name, else ustar). */
  name: string;
  /** `file`, `link`, `symlink`, `character-device`, `block-device`, `directory` or `fifo`. */
  type: string;
  /** Link target, for `link` and `symlink` entries. */
  linkname?: string;
  /** Body size in bytes (0 for header-only types). */
  size: number;
  /**
   * Offset of the entry's own ustar header block; extension headers, if
   * any, come before it.
   */
  headerOffset: number;
  /** Offset of its body. */
  offset: number;
}

const TYPES: Record<string, string> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "character-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
};
// Types whose size field says nothing about a body (Go: isHeaderOnlyType).
const HEADER_ONLY = new Set(["1", "2", "3", "4", "5", "6"]);

const decoder = new TextDecoder();

/**
 * Reads a tar stream entry by entry: `next()` gives the next entry's header
 * (skipping whatever of the body before it was not read), `body()` the
 * current body's bytes as they stream. A malformed stream errors with
 * `BAD_LAYOUT`, a record or a name over its bound with `ARCHIVE_LIMIT`.
 *
 * @example
 * ```ts
 * import { TarReader } from "./tar_reader.ts";
 * declare const stream: ReadableStream<Uint8Array>;
 * const tar = new TarReader(stream, "archive.tar");
 * for (let entry; (entry = await tar.next());) console.log(entry.name, entry.offset);
 * ```
 */
export class TarReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #label: string;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #position = 0;
  #ended = false;
  #bodyLeft = 0;
  #padding = 0;
  #done = false;

  /**
   * A reader of `stream`, a plain (uncompressed) tar.
   *
   * @param stream the tar's bytes
   * @param label what error messages call the archive
   */
  constructor(stream: ReadableStream<Uint8Array>, label: string) {
    this.#reader = stream.getReader();
    this.#label = label;
  }

  /** The next entry, or `undefined` at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    await this.#skip(this.#bodyLeft + this.#padding);
    this.#bodyLeft = this.#padding = 0;
    if (this.#done) return undefined;
    let pax = new Map<string, string>();
    let longName: string | undefined;
    let longLink: string | undefined;
    for (;;) {
      const headerOffset = this.#position;
      const block = await this.#take(512, true);
      if (block === undefined || isZero(block)) {
        // End of archive: two zero blocks, or (as Go accepts) the end of
        // the stream at a block boundary; what follows is not read.
        if (
          block && !isZero(await this.#take(512, true) ?? new Uint8Array(0))
        ) {
          this.#fail("a zero block is followed by data");
        }
        if (longName !== undefined || longLink !== undefined || pax.size) {
          this.#fail("it ends after an extended header");
        }
        this.#done = true;
        await this.#reader.cancel().catch(() => {});
        return undefined;
      }
      checkChecksum(block, this);
      const flag = String.fromCharCode(block[156]);
      const size = number(block, 124, 12, this);
      if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
        if (size > MAX_TAR_RECORD_BYTES) {
          throw new DockerSaveError(
            "ARCHIVE_LIMIT",
            `Cannot read ${this.#label}: a ${
              flag === "x" || flag === "g" ? "PAX" : "GNU long-name"
            } record at offset ${headerOffset} has ${size} bytes, more than the ${MAX_TAR_RECORD_BYTES} allowed`,
          );
        }
        const body = (await this.#take(size, false))!;
        await this.#skip(pad(size));
        if (flag === "x") pax = new Map([...pax, ...parsePax(body, this)]);
        else if (flag === "g") parsePax(body, this); // checked, never merged
        else if (flag === "L") longName = cString(body);
        else longLink = cString(body);
        continue;
      }
      const magic = decoder.decode(block.subarray(257, 263));
      let name = cString(block.subarray(0, 100));
      // POSIX ustar has a prefix; GNU ("ustar  ") uses that space otherwise.
      if (magic === "ustar\0") {
        const prefix = cString(block.subarray(345, 500));
        if (prefix) name = `${prefix}/${name}`;
      }
      name = pax.get("path") ?? longName ?? name;
      const linkname = pax.get("linkpath") ?? longLink ??
        cString(block.subarray(157, 257));
      let type = TYPES[flag] ?? "file";
      const paxSizeText = pax.get("size");
      let bodySize = paxSizeText !== undefined
        ? paxSize(paxSizeText, this)
        : size;
      if (HEADER_ONLY.has(flag)) bodySize = 0;
      // Old tars mark directories by a trailing slash alone.
      if (type === "file" && name.endsWith("/") && flag !== "7") {
        type = "directory";
        bodySize = 0;
      }
      for (const value of [name, linkname]) {
        if (value.length > MAX_TAR_NAME_LENGTH) {
          throw new DockerSaveError(
            "ARCHIVE_LIMIT",
            `Cannot read ${this.#label}: the entry at offset ${headerOffset} has a name or link of ${value.length} characters, more than the ${MAX_TAR_NAME_LENGTH} allowed`,
          );
        }
      }
      this.#bodyLeft = bodySize;
      this.#padding = pad(bodySize);
      const entry: TarEntry = {
        name,
        type,
        size: bodySize,
        headerOffset,
        offset: this.#position,
      };
      if (linkname && (type === "link" || type === "symlink")) {
        entry.linkname = linkname;
      }
      return entry;
    }
  }

  /**
   * The next bytes of the current entry's body (views of the stream's
   * chunks), `undefined` once it is all read.
   */
  async body(): Promise<Uint8Array | undefined> {
    if (this.#bodyLeft === 0) return undefined;
    if (this.#buffered === 0 && !(await this.#fill())) {
      this.#fail("Tar archive is truncated.", true);
    }
    const first = this.#chunks[0];
    const n = Math.min(first.byteLength, this.#bodyLeft);
    const out = first.subarray(0, n);
    this.#consume(n);
    this.#bodyLeft -= n;
    return out;
  }

  /** How many bytes of the tar stream were taken so far. */
  get position(): number {
    return this.#position;
  }

  /** Stops reading: cancels the stream. */
  async cancel(reason?: unknown): Promise<void> {
    await this.#reader.cancel(reason).catch(() => {});
  }

  /** Throws the reader's `BAD_LAYOUT` error for a malformed archive. */
  fail(why: string): never {
    this.#fail(why);
  }

  #fail(why: string, exact = false): never {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${this.#label}: it is not a valid tar archive (${
        exact ? why : `${why} at offset ${this.#position}`
      })`,
    );
  }

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    for (;;) {
      const { done, value } = await this.#reader.read();
      if (done) {
        this.#ended = true;
        return false;
      }
      if (value.byteLength === 0) continue;
      this.#chunks.push(value);
      this.#buffered += value.byteLength;
      return true;
    }
  }

  #consume(n: number): void {
    this.#position += n;
    this.#buffered -= n;
    while (n > 0) {
      const first = this.#chunks[0];
      if (first.byteLength <= n) {
        this.#chunks.shift();
        n -= first.byteLength;
      } else {
        this.#chunks[0] = first.subarray(n);
        n = 0;
      }
    }
  }

  // Exactly n bytes (copied when they span chunks); at the very end of the
  // stream `undefined` when `atEnd` allows it, else a truncation error.
  async #take(n: number, atEnd: boolean): Promise<Uint8Array | undefined> {
    if (n === 0) return new Uint8Array(0);
    while (this.#buffered < n) {
      if (!(await this.#fill())) {
        if (atEnd && this.#buffered === 0) return undefined;
        this.#fail("Tar archive is truncated.", true);
      }
    }
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first.byteLength >= n) out = first.slice(0, n);
    else {
      out = new Uint8Array(n);
      let at = 0;
      for (const chunk of this.#chunks) {
        if (at === n) break;
        const part = chunk.subarray(0, n - at);
        out.set(part, at);
        at += part.byteLength;
      }
    }
    this.#consume(n);
    return out;
  }

  async #skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.#buffered === 0 && !(await this.#fill())) {
        this.#fail("Tar archive is truncated.", true);
      }
      const step = Math.min(n, this.#buffered);
      this.#consume(step);
      n -= step;
    }
  }
}

function pad(size: number): number {
  return (512 - size % 512) % 512;
}

function isZero(block: Uint8Array): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

// The checksum field holds the sum of the header's bytes with the field
// itself as spaces; old tars summed signed bytes (Go accepts either).
function checkChecksum(block: Uint8Array, tar: TarReader): void {
  const stored = number(block, 148, 8, tar);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) {
    tar.fail("a header's checksum is wrong");
  }
}

// A numeric field: octal text (spaces and NULs around it), or GNU base-256
// (high bit of the first byte set) for values octal cannot hold.
function number(
  block: Uint8Array,
  at: number,
  length: number,
  tar: TarReader,
): number {
  const field = block.subarray(at, at + length);
  if (field[0] & 0x80) {
    if (field[0] === 0xff) tar.fail("a header has a negative number");
    let value = field[0] & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) tar.fail("a header's number is too big");
    return value;
  }
  const text = decoder.decode(field).replace(/^[ \0]+|[ \0]+$/g, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) tar.fail("a header's number is not octal");
  return parseInt(text, 8);
}

// PAX records: "<length> <key>=<value>\n", the length counting the whole
// record. A malformed one is an error, as in Go.
function parsePax(body: Uint8Array, tar: TarReader): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < body.byteLength) {
    const space = body.indexOf(0x20, at);
    const lengthText = space === -1
      ? ""
      : decoder.decode(body.subarray(at, space));
    const length = /^[1-9][0-9]{0,7}$/.test(lengthText)
      ? Number(lengthText)
      : NaN;
    const end = at + length;
    if (!(end <= body.byteLength) || body[end - 1] !== 0x0a || end <= space) {
      tar.fail("a PAX record is malformed");
    }
    const record = decoder.decode(body.subarray(space + 1, end - 1));
    const equals = record.indexOf("=");
    if (equals <= 0) tar.fail("a PAX record has no key");
    records.set(record.slice(0, equals), record.slice(equals + 1));
    at = end;
  }
  return records;
}

function paxSize(text: string, tar: TarReader): number {
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    tar.fail("a PAX size is not a number");
  }
  return Number(text);
}
