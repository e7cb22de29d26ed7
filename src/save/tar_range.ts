/**
 * A byte range of a tarball whose members' sizes are all known, produced
 * without reading anything before it: headers and padding are computed,
 * and a body is opened at the offset the range starts in it.
 *
 * @module
 */

import { BLOCK_SIZE, RECORD_SIZE, tarHeader } from "./tar_writer.ts";
import type { SizedMember } from "./sized_plan.ts";

/** One stretch of the tarball: bytes at hand, or a body to open. */
type Piece =
  | { start: number; bytes: Uint8Array }
  | { start: number; length: number; member: SizedMember };

/**
 * The total length of the tarball of `members`.
 *
 * @example
 * ```ts
 * import { tarLength } from "./tar_range.ts";
 * tarLength([]); // 10240
 * ```
 */
export function tarLength(members: readonly SizedMember[]): number {
  return layout(members).length;
}

/**
 * Bytes `start` (inclusive) to `end` (exclusive) of the tarball of
 * `members`, pulled on demand. Bodies before the range are never opened.
 *
 * @example
 * ```ts
 * import { tarRangeStream } from "./tar_range.ts";
 * import type { SizedMember } from "./sized_plan.ts";
 * declare const members: SizedMember[];
 * const tail = tarRangeStream(members, 1024, 4096);
 * ```
 */
export function tarRangeStream(
  members: readonly SizedMember[],
  start: number,
  end: number,
): ReadableStream<Uint8Array> {
  const { pieces } = layout(members);
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
            throw new RangeError(
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

function layout(members: readonly SizedMember[]) {
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
    const pad = (BLOCK_SIZE - member.size % BLOCK_SIZE) % BLOCK_SIZE;
    add({ start: offset, bytes: new Uint8Array(pad) }, pad);
  }
  const end = 2 * BLOCK_SIZE;
  const total = Math.ceil((offset + end) / RECORD_SIZE) * RECORD_SIZE;
  add({ start: offset, bytes: new Uint8Array(total - offset) }, total - offset);
  return { pieces, length: offset };
}
