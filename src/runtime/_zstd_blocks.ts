/**
 * Where each block of a zstd stream ends, with the frame and block headers
 * checked against RFC 8878 before anything is decoded. fzstd decodes every
 * complete block of the input it is given at once, and accepts blocks the
 * format forbids (an RLE block of 2 MiB: a 2 KiB frame became 1 GiB), so
 * its input is cut after each block: one write, at most one block (128 KiB)
 * of output.
 *
 * @module
 */

/** RFC 8878 §3.1.1: frames start with this magic number. */
const FRAME_MAGIC = 0xfd2fb528;
/** RFC 8878 §3.1.2: skippable frames use 0x184D2A50 to 0x184D2A5F. */
const SKIPPABLE_MAGIC = 0x184d2a50;
/** RFC 8878 §3.1.1.2: Block_Maximum_Size is at most 128 KiB. */
const MAX_BLOCK_SIZE = 128 * 1024;
/**
 * The largest window accepted: libzstd's default limit
 * (`ZSTD_WINDOWLOG_LIMIT_DEFAULT` = 27 in libzstd; larger windows need
 * `--long`/`--memory` there too). fzstd keeps the whole window in memory.
 */
export const MAX_WINDOW_SIZE = 128 * 1024 * 1024;

/** The parts of a zstd stream, in the order they come. */
type Part =
  | "magic"
  | "descriptor"
  | "frameHeader"
  | "blockHeader"
  | "blockBody"
  | "checksum"
  | "skippableSize"
  | "skippableBody";

/** Parts read whole (up to 13 bytes) before they are understood. */
const PARSED: ReadonlySet<Part> = new Set([
  "magic",
  "descriptor",
  "frameHeader",
  "blockHeader",
  "skippableSize",
]);

/**
 * Follows a zstd stream's structure byte by byte, without decoding: frame
 * headers (window size, dictionary), block headers (type, size) and the
 * bytes in between.
 *
 * @example
 * ```ts
 * import { ZstdBlockScanner } from "./_zstd_blocks.ts";
 * declare const input: Uint8Array;
 * const scanner = new ZstdBlockScanner();
 * for (let rest = input; rest.byteLength;) {
 *   const upToBlockEnd = rest.subarray(0, scanner.scan(rest));
 *   // decode upToBlockEnd: it completes at most one block
 *   rest = rest.subarray(upToBlockEnd.byteLength);
 * }
 * scanner.end();
 * ```
 */
export class ZstdBlockScanner {
  #part: Part = "magic";
  #need = 4;
  #head = new Uint8Array(14);
  #headLength = 0;
  // The frame being read.
  #descriptor = 0;
  #blockMaximum = 0;
  #lastBlock = false;

  /**
   * How many bytes of `chunk` to take: up to and including the end of the
   * next block, or all of it. Throws `RangeError` on a header the format
   * or our limits forbid, before the bytes it describes are taken.
   */
  scan(chunk: Uint8Array): number {
    let taken = 0;
    while (taken < chunk.byteLength) {
      const step = Math.min(this.#need, chunk.byteLength - taken);
      if (PARSED.has(this.#part)) {
        this.#head.set(chunk.subarray(taken, taken + step), this.#headLength);
        this.#headLength += step;
      }
      taken += step;
      this.#need -= step;
      if (this.#need > 0) break;
      if (this.#next()) return taken;
    }
    return taken;
  }

  /** Throws unless the input ended between frames. */
  end(): void {
    if (this.#part !== "magic" || this.#headLength !== 0) {
      throw new RangeError(
        "Cannot decompress zstd: the data ends inside a frame",
      );
    }
  }

  /** Moves past a complete part; true when a block just ended. */
  #next(): boolean {
    const head = this.#head.subarray(0, this.#headLength);
    this.#headLength = 0;
    switch (this.#part) {
      case "magic": {
        const magic = uint(head, 0, 4);
        if (magic === FRAME_MAGIC) return this.#expect("descriptor", 1);
        if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) {
          return this.#expect("skippableSize", 4);
        }
        throw new RangeError(
          `Cannot decompress zstd: 0x${
            magic.toString(16).padStart(8, "0")
          } is not a frame's magic number`,
        );
      }
      case "descriptor": {
        const descriptor = this.#descriptor = head[0];
        if (descriptor & 0x08) {
          throw new RangeError(
            "Cannot decompress zstd: a frame header sets the reserved bit",
          );
        }
        const single = (descriptor & 0x20) !== 0;
        const contentSizeFlag = descriptor >> 6;
        return this.#expect(
          "frameHeader",
          (single ? 0 : 1) + [0, 1, 2, 4][descriptor & 3] +
            (contentSizeFlag === 0 ? (single ? 1 : 0) : 1 << contentSizeFlag),
        );
      }
      case "frameHeader":
        return this.#frameHeader(head);
      case "blockHeader": {
        const header = uint(head, 0, 3);
        const type = (header >> 1) & 3;
        const size = header >>> 3;
        this.#lastBlock = (header & 1) === 1;
        if (type === 3) {
          throw new RangeError(
            "Cannot decompress zstd: a block has the reserved type 3",
          );
        }
        if (size > this.#blockMaximum) {
          throw new RangeError(
            `Cannot decompress zstd: a block of ${size} bytes, more than the ${this.#blockMaximum} its frame allows (RFC 8878: the window, at most 128 KiB)`,
          );
        }
        // An RLE block stores one byte, repeated `size` times.
        const body = type === 1 ? 1 : size;
        if (body > 0) return this.#expect("blockBody", body);
        return this.#blockEnded();
      }
      case "blockBody":
        return this.#blockEnded();
      case "skippableSize": {
        const size = uint(head, 0, 4);
        return size > 0
          ? this.#expect("skippableBody", size)
          : this.#expect("magic", 4);
      }
      case "checksum":
      case "skippableBody":
        return this.#expect("magic", 4);
    }
  }

  #frameHeader(head: Uint8Array): boolean {
    const descriptor = this.#descriptor;
    const single = (descriptor & 0x20) !== 0;
    let at = 0;
    let window = 0;
    if (!single) {
      const exponent = head[0] >> 3;
      const base = 2 ** (10 + exponent);
      window = base + (base / 8) * (head[0] & 7);
      at = 1;
    }
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
    if (uint(head, at, dictionaryBytes) !== 0) {
      throw new RangeError(
        "Cannot decompress zstd: a frame needs a dictionary",
      );
    }
    at += dictionaryBytes;
    if (single) {
      // The window is the content size (RFC 8878 §3.1.1.1.2).
      const sizeBytes = head.byteLength - at;
      window = uint(head, at, sizeBytes) + (sizeBytes === 2 ? 256 : 0);
    }
    if (window > MAX_WINDOW_SIZE) {
      throw new RangeError(
        `Cannot decompress zstd: a frame's window of ${window} bytes is over the ${MAX_WINDOW_SIZE} allowed`,
      );
    }
    this.#blockMaximum = Math.min(window, MAX_BLOCK_SIZE);
    return this.#expect("blockHeader", 3);
  }

  #blockEnded(): boolean {
    if (!this.#lastBlock) this.#expect("blockHeader", 3);
    else if (this.#descriptor & 0x04) this.#expect("checksum", 4);
    else this.#expect("magic", 4);
    return true;
  }

  #expect(part: Part, bytes: number): false {
    this.#part = part;
    this.#need = bytes;
    return false;
  }
}

/** A little-endian unsigned integer of up to 8 bytes (exact below 2^53). */
function uint(bytes: Uint8Array, at: number, length: number): number {
  let value = 0;
  for (let i = length - 1; i >= 0; i--) value = value * 256 + bytes[at + i];
  return value;
}
