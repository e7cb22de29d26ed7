/**
 * Small pull-based stream and byte helpers shared by the pipeline and the
 * sources.
 *
 * @module
 */

/**
 * The same bytes, with errors replaced by `wrap(error)`: to name the layer
 * or member that a low-level error (zlib, a file read) came from.
 *
 * @example
 * ```ts
 * import { mapErrors } from "./streams.ts";
 * declare const gunzipped: ReadableStream<Uint8Array>;
 * mapErrors(gunzipped, (e) => new Error(`layer 1: ${(e as Error).message}`));
 * ```
 */
export function mapErrors(
  stream: ReadableStream<Uint8Array>,
  wrap: (error: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(wrap(error));
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * A stream without its first `count` bytes.
 *
 * @example
 * ```ts
 * import { skipBytes } from "./streams.ts";
 * skipBytes(new Blob(["abcdef"]).stream(), 2); // "cdef"
 * ```
 */
export function skipBytes(
  stream: ReadableStream<Uint8Array>,
  count: number,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let toSkip = count;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        if (toSkip >= value.byteLength) {
          toSkip -= value.byteLength;
          continue;
        }
        controller.enqueue(toSkip ? value.subarray(toSkip) : value);
        toSkip = 0;
        return;
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * The first `count` bytes of a stream; the rest is not read (the stream is
 * cancelled once they are out). A stream that ends before them ends early.
 *
 * @example
 * ```ts
 * import { takeBytes } from "./streams.ts";
 * takeBytes(new Blob(["abcdef"]).stream(), 2); // "ab"
 * ```
 */
export function takeBytes(
  stream: ReadableStream<Uint8Array>,
  count: number,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let left = count;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left <= 0) {
        await reader.cancel().catch(() => {});
        return controller.close();
      }
      const { done, value } = await reader.read();
      if (done) return controller.close();
      const chunk = value.byteLength > left ? value.subarray(0, left) : value;
      left -= chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * The chunks as one new byte array (a copy, even of a single chunk).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./streams.ts";
 * concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]); // [1, 2, 3]
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
