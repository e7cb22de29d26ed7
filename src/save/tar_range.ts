/**
 * A byte range of a tarball whose members' sizes are all known, produced
 * without reading anything before it: headers and padding are computed,
 * and a body is opened at the offset the range starts in it.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import type { SizedMember } from "./layers.ts";
import { endOfArchive, padding, tarHeader } from "./tar_writer.ts";

/** One stretch of the tarball: bytes at hand, or a body to open. */
type Piece =
  | { start: number; bytes: Uint8Array }
  | { start: number; length: number; member: SizedMember };

/**
 * Bytes `start` (inclusive) to `end` (exclusive) of the tarball of
 * `members`, pulled on demand. Bodies before the range are never opened.
 *
 * @example
 * ```ts
 * import { tarRangeStream } from "./tar_range.ts";
 * import type { SizedMember } from "./layers.ts";
 * declare const members: SizedMember[];
 * const tail = tarRangeStream(members, 1024, 4096);
 * ```
 */
export function tarRangeStream(
  members: readonly SizedMember[],
  start: number,
  end: number,
): ReadableStream<Uint8Array> {
  const pieces = layout(members);
  const iterator = rangeChunks(pieces, start, end);
  let open: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await open?.cancel(reason).catch(() => {});
      await iterator.return(undefined);
    },
  }, { highWaterMark: 0 });

  async function* rangeChunks(
    pieces: Piece[],
    from: number,
    to: number,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    for (const piece of pieces) {
      const length = "bytes" in piece ? piece.bytes.byteLength : piece.length;
      const a = Math.max(from, piece.start);
      const b = Math.min(to, piece.start + length);
      if (a >= b) continue;
      if ("bytes" in piece) {
        yield piece.bytes.subarray(a - piece.start, b - piece.start);
        continue;
      }
      open = (await piece.member.open(a - piece.start)).getReader();
      let left = b - a;
      try {
        while (left > 0) {
          const { done, value } = await open.read();
          if (done) {
            // A blob shorter than its descriptor: the whole GET's error
            // (verify.ts), though a range cannot hash what it skipped.
            throw new DockerSaveError(
              "SIZE_MISMATCH",
              `Cannot read tar range: "${piece.member.name}" ended ${left} bytes early`,
            );
          }
          const chunk = value.byteLength > left
            ? value.subarray(0, left)
            : value;
          left -= chunk.byteLength;
          yield chunk;
        }
      } finally {
        // The range may end inside the body: stop reading it there.
        await open.cancel().catch(() => {});
        open = undefined;
      }
    }
  }
}

// The tarball as pieces, with the same header, padding and end math as the
// writer (tar_writer.ts), so a range is the same slice of the full stream.
function layout(members: readonly SizedMember[]): Piece[] {
  const pieces: Piece[] = [];
  let offset = 0;
  const add = (piece: Piece, length: number) => {
    if (length > 0) pieces.push(piece);
    offset += length;
  };
  for (const member of members) {
    const header = tarHeader(member.name, member.size);
    add({ start: offset, bytes: header }, header.byteLength);
    add({ start: offset, length: member.size, member }, member.size);
    const pad = padding(member.size);
    add({ start: offset, bytes: new Uint8Array(pad) }, pad);
  }
  const end = endOfArchive(offset);
  add({ start: offset, bytes: new Uint8Array(end) }, end);
  return pieces;
}
