/**
 * A pull-based tar writer whose output is byte-for-byte what Python's
 * `tarfile.open(path, "w")` writes (PAX_FORMAT, the default) for
 * `tarfile.TarInfo(name)` entries with only `size` set, followed by
 * `close()`.
 *
 * Every entry is a regular file with mode 0644, uid/gid 0, mtime 0 and empty
 * user/group names, so the same inputs always give the same bytes. Names that
 * are not ASCII or longer than 100 bytes, and sizes of 8 GiB or more, get a
 * PAX extended header, as Python does.
 *
 * @example Write two files
 * ```ts
 * import { tarStream } from "./tar_writer.ts";
 *
 * const text = new TextEncoder().encode("hello\n");
 * const stream = tarStream([
 *   { name: "hello.txt", size: text.length, body: text },
 *   {
 *     name: "lazy.txt",
 *     size: 4,
 *     body: () => new Blob(["lazy"]).stream(),
 *   },
 * ]);
 * const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
 * console.log(bytes.length); // 10240
 * ```
 *
 * @module
 */

/** Size of one tar block: headers and padded bodies are multiples of it. */
export const BLOCK_SIZE = 512;

/**
 * Python's `tarfile.RECORDSIZE`: the finished archive is padded with zeros to
 * a multiple of it.
 */
export const RECORD_SIZE = 10240;

/** One file in the archive. */
export interface TarEntry {
  /** Path inside the archive; non-empty, no NUL, well-formed UTF-16. */
  name: string;
  /** Exact byte count of the body; a non-negative safe integer. */
  size: number;
  /**
   * The file's bytes, or a function that opens them. The function is called
   * only once the writer reaches this entry, so sources can be opened lazily.
   */
  body:
    | Uint8Array
    | (() => ReadableStream<Uint8Array> | Promise<ReadableStream<Uint8Array>>);
}

// Sizes from 8 ** 11 on do not fit the 11 octal digits of the ustar field.
const MAX_USTAR_SIZE = 8 ** 11 - 1;
const NAME_LENGTH = 100;
const END_OF_ARCHIVE = 2 * BLOCK_SIZE;
const PAX_HEADER_NAME = "././@PaxHeader";

const encoder = new TextEncoder();

function validate(name: unknown, size: unknown): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError(
      `Cannot write tar entry: name must be a non-empty string, got ${
        typeof name === "string" ? '""' : typeof name
      }`,
    );
  }
  // A NUL would end the name early for readers; a lone surrogate has no UTF-8
  // form (Python would fall back to hdrcharset=BINARY).
  if (name.includes("\0") || /\p{Cs}/u.test(name)) {
    throw new TypeError(
      `Cannot write tar entry ${
        JSON.stringify(name)
      }: name contains a NUL or a lone surrogate`,
    );
  }
  if (typeof size !== "number") {
    throw new TypeError(
      `Cannot write tar entry ${
        JSON.stringify(name)
      }: size must be a number, got ${typeof size}`,
    );
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(
      `Cannot write tar entry ${
        JSON.stringify(name)
      }: size must be a non-negative safe integer, got ${size}`,
    );
  }
}

/**
 * The zero bytes after a body of `length` bytes, up to the next block.
 *
 * @example
 * ```ts
 * import { padding } from "./tar_writer.ts";
 * padding(6); // 506
 * ```
 */
export function padding(length: number): number {
  return (BLOCK_SIZE - length % BLOCK_SIZE) % BLOCK_SIZE;
}

/**
 * The zero bytes that end an archive whose members take `length` bytes:
 * two end blocks, then padding to a whole record (as Python's `close()`).
 *
 * @example
 * ```ts
 * import { endOfArchive } from "./tar_writer.ts";
 * endOfArchive(0); // 10240
 * ```
 */
export function endOfArchive(length: number): number {
  return END_OF_ARCHIVE +
    (RECORD_SIZE - (length + END_OF_ARCHIVE) % RECORD_SIZE) % RECORD_SIZE;
}

function isAscii(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(text);
}

/** Python's `"%d %s=%s\n"` record, whose length prefix counts itself. */
function paxRecord(keyword: string, value: string): string {
  const length = keyword.length + encoder.encode(value).length + 3;
  let total = 0;
  for (;;) {
    const next = length + String(total).length;
    if (next === total) break;
    total = next;
  }
  return `${total} ${keyword}=${value}\n`;
}

/** The PAX records Python's `create_pax_header` adds, in its order. */
function paxRecords(name: string, size: number): Uint8Array | undefined {
  let records = "";
  if (!isAscii(name) || name.length > NAME_LENGTH) {
    records += paxRecord("path", name);
  }
  if (size > MAX_USTAR_SIZE) records += paxRecord("size", String(size));
  return records === "" ? undefined : encoder.encode(records);
}

function writeString(
  block: Uint8Array,
  offset: number,
  length: number,
  text: string,
): void {
  for (let i = 0; i < text.length && i < length; i++) {
    block[offset + i] = text.charCodeAt(i);
  }
}

function octal(value: number, digits: number): string {
  return value.toString(8).padStart(digits, "0");
}

/**
 * One ustar block laid out as Python's `_create_header` does. `asciiName` is
 * already ASCII; octal fields are digits + NUL, devmajor/devminor stay NUL.
 */
function ustarBlock(
  asciiName: string,
  mode: number,
  size: number,
  typeflag: string,
): Uint8Array {
  const block = new Uint8Array(BLOCK_SIZE);
  writeString(block, 0, NAME_LENGTH, asciiName);
  writeString(block, 100, 7, octal(mode, 7));
  writeString(block, 108, 7, octal(0, 7)); // uid
  writeString(block, 116, 7, octal(0, 7)); // gid
  writeString(block, 124, 11, octal(size, 11));
  writeString(block, 136, 11, octal(0, 11)); // mtime
  writeString(block, 148, 8, "        "); // checksum counts as spaces
  writeString(block, 156, 1, typeflag);
  writeString(block, 257, 8, "ustar\x0000");
  let checksum = 0;
  for (const byte of block) checksum += byte;
  // "%06o\0" then the field's 8th byte keeps its space.
  writeString(block, 148, 7, `${octal(checksum, 6)}\0`);
  return block;
}

function ustarName(name: string): string {
  // Python encodes the ustar field with ("ascii", "replace"): one "?" per
  // non-ASCII code point, then cuts it to 100 bytes.
  let out = "";
  for (const char of name) {
    out += char.charCodeAt(0) < 0x80 ? char : "?";
    if (out.length >= NAME_LENGTH) break;
  }
  return out.slice(0, NAME_LENGTH);
}

function headerLength(name: string, size: number): number {
  const records = paxRecords(name, size);
  if (records === undefined) return BLOCK_SIZE;
  return 2 * BLOCK_SIZE + records.length + padding(records.length);
}

/**
 * The header blocks of one regular-file entry: a PAX extended header (block
 * plus padded records) when needed, then the ustar header.
 *
 * @example A short name needs one block
 * ```ts
 * import { tarHeader } from "./tar_writer.ts";
 *
 * console.log(tarHeader("hello.txt", 6).length); // 512
 * console.log(tarHeader("big.bin", 8 * 1024 ** 3).length); // 1536
 * ```
 *
 * @param name path inside the archive
 * @param size body length in bytes
 * @returns the header bytes, a multiple of {@linkcode BLOCK_SIZE}
 * @throws {TypeError} if the name is empty or not representable
 * @throws {RangeError} if the size is not a non-negative safe integer
 */
export function tarHeader(name: string, size: number): Uint8Array {
  validate(name, size);
  const header = ustarBlock(
    ustarName(name),
    0o644,
    size > MAX_USTAR_SIZE ? 0 : size,
    "0",
  );
  const records = paxRecords(name, size);
  if (records === undefined) return header;

  const out = new Uint8Array(headerLength(name, size));
  out.set(ustarBlock(PAX_HEADER_NAME, 0, records.length, "x"));
  out.set(records, BLOCK_SIZE);
  out.set(header, out.length - BLOCK_SIZE);
  return out;
}

/**
 * The exact length of the archive {@linkcode tarStream} writes for these
 * entries: headers, bodies padded to blocks, the two end blocks and the
 * padding to a whole record. Useful for a `Content-Length`.
 *
 * @example Announce the length up front
 * ```ts
 * import { tarSize } from "./tar_writer.ts";
 *
 * console.log(tarSize([{ name: "hello.txt", size: 6 }])); // 10240
 * ```
 *
 * @param entries names and sizes, as they will be passed to `tarStream()`
 * @returns the archive length in bytes
 * @throws {TypeError} if a name is empty or not representable
 * @throws {RangeError} if a size is invalid or the total is not a safe integer
 */
export function tarSize(
  entries: Iterable<Pick<TarEntry, "name" | "size">>,
): number {
  let total = 0;
  for (const { name, size } of entries) {
    validate(name, size);
    total += headerLength(name, size) + size + padding(size);
  }
  total += endOfArchive(total);
  if (!Number.isSafeInteger(total)) {
    throw new RangeError(
      `Cannot compute tar size: total ${total} is not a safe integer`,
    );
  }
  return total;
}

type EntryIterator = AsyncIterator<TarEntry> | Iterator<TarEntry>;

function lengthError(name: string, actual: number, size: number): RangeError {
  return new RangeError(
    `Cannot write tar entry ${
      JSON.stringify(name)
    }: body has ${actual} bytes, expected ${size}`,
  );
}

/**
 * Write entries as one tar stream, produced only as fast as it is read.
 *
 * The stream has `highWaterMark: 0`, so nothing happens until the consumer
 * reads, and each read produces one chunk: a header, one body chunk (passed
 * through without copying), a padding block, or the end of the archive.
 * `entries` is advanced only after the previous entry is fully written, and a
 * body function is called only when its entry's body is reached, so at most
 * one body is open at a time.
 *
 * The stream errors, without writing the end of the archive, if an entry is
 * invalid, a body is shorter or longer than its `size` (a `RangeError`; extra
 * bytes are never written), or `entries` or a body stream throws (with that
 * same error). Cancelling it cancels the open body stream with the reason and
 * calls `return()` on the entries iterator.
 *
 * @example Stream a tarball to a file
 * ```ts
 * import { tarStream } from "./tar_writer.ts";
 *
 * async function* entries() {
 *   const body = new TextEncoder().encode("{}");
 *   yield { name: "manifest.json", size: body.length, body };
 * }
 * const bytes = await new Response(tarStream(entries())).arrayBuffer();
 * console.log(bytes.byteLength); // 10240
 * ```
 *
 * @param entries the files, in archive order
 * @returns the archive bytes
 */
export function tarStream(
  entries: AsyncIterable<TarEntry> | Iterable<TarEntry>,
): ReadableStream<Uint8Array> {
  // Kept outside the generator so cancel() reaches them even while a pull
  // is waiting on one of them.
  let iterator: EntryIterator | undefined;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let cancelled = false;
  let cancelReason: unknown;

  async function closeIterator(): Promise<void> {
    const it = iterator;
    iterator = undefined;
    await it?.return?.();
  }

  async function* generate(): AsyncGenerator<Uint8Array, void, undefined> {
    const it: EntryIterator = Symbol.asyncIterator in entries
      ? entries[Symbol.asyncIterator]()
      : entries[Symbol.iterator]();
    iterator = it;
    // Archive length so far, for the final record padding.
    let offset = 0;
    for (;;) {
      let result: IteratorResult<TarEntry>;
      try {
        result = await it.next();
      } catch (error) {
        iterator = undefined; // a throwing iterator is finished
        throw error;
      }
      if (cancelled) return;
      if (result.done) {
        iterator = undefined;
        break;
      }
      const { name, size, body } = result.value;
      validate(name, size);
      if (!(body instanceof Uint8Array) && typeof body !== "function") {
        throw new TypeError(
          `Cannot write tar entry ${
            JSON.stringify(name)
          }: body must be a Uint8Array or a function`,
        );
      }
      if (body instanceof Uint8Array && body.length !== size) {
        throw lengthError(name, body.length, size);
      }

      const header = tarHeader(name, size);
      offset += header.length;
      yield header;

      if (body instanceof Uint8Array) {
        if (size > 0) yield body;
      } else {
        const stream = await body();
        if (cancelled) {
          await stream.cancel(cancelReason);
          return;
        }
        const r = stream.getReader();
        reader = r;
        let written = 0;
        for (;;) {
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await r.read();
          } catch (error) {
            reader = undefined; // an errored stream needs no cancel
            throw error;
          }
          if (cancelled) return;
          if (chunk.done) break;
          const bytes = chunk.value;
          if (!(bytes instanceof Uint8Array)) {
            throw new TypeError(
              `Cannot write tar entry ${
                JSON.stringify(name)
              }: body stream yielded a non-Uint8Array chunk`,
            );
          }
          // Fail before emitting the bytes that overflow the announced size.
          if (written + bytes.length > size) {
            throw lengthError(name, written + bytes.length, size);
          }
          written += bytes.length;
          if (bytes.length > 0) yield bytes;
        }
        r.releaseLock();
        reader = undefined;
        if (written !== size) throw lengthError(name, written, size);
      }
      offset += size;

      const pad = padding(size);
      if (pad > 0) {
        offset += pad;
        yield new Uint8Array(pad);
      }
    }

    yield new Uint8Array(endOfArchive(offset));
  }

  const steps = generate();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let step: IteratorResult<Uint8Array, void>;
      try {
        step = await steps.next();
      } catch (error) {
        if (cancelled) return;
        controller.error(error);
        // Release what is still open; the original error is what matters.
        const open = reader;
        reader = undefined;
        await Promise.allSettled([open?.cancel(error), closeIterator()]);
        return;
      }
      if (cancelled) return;
      if (step.done) controller.close();
      else controller.enqueue(step.value);
    },
    async cancel(reason) {
      cancelled = true;
      cancelReason = reason;
      const open = reader;
      reader = undefined;
      const results = await Promise.allSettled([
        open?.cancel(reason),
        closeIterator(),
      ]);
      for (const result of results) {
        if (result.status === "rejected") throw result.reason;
      }
    },
  }, { highWaterMark: 0 });
}
