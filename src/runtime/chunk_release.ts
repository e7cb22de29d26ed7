/**
 * Freeing a layer's chunks as soon as their last reader is done with them,
 * instead of at the garbage collector's next pass.
 *
 * A layer streams through as thousands of 256 KiB chunks. V8 frees a dead
 * chunk's memory only when it next collects, which, with the young
 * generation Deno sizes for throughput, comes after up to 64 MB of them:
 * plain `deno run` peaked at 129–168 MiB for 1–4 GiB layers, ~70 MiB of it
 * the floor. `ArrayBuffer.prototype.transfer(0)` detaches a buffer and frees
 * its memory at once (Deno, Bun; Node 20 has no `transfer` and waits).
 *
 * Only chunks nobody else can hold are marked: those of a stream whose
 * producer makes a fresh buffer per chunk (file reads, zlib's output, a
 * `fetch` body read by one reader) and that save's layer stage has claimed
 * as the stream's one reader (a stream has only one). A stream that passed
 * through other hands (an `Image` wrapper may tee it) is not the producer's
 * own object, so its chunks are never marked. A buffer is freed when the
 * chunk spanning it is released, or when chunks marked as parts of it have
 * been released for every one of its bytes (zlib hands out a 256 KiB buffer
 * in parts across writes); a buffer shared with views never marked (Node's
 * small-buffer pool) is never freed here. It is freed by the reader that
 * uses it last (`saveToFile`'s writer and the CLI's stdout writer once the
 * write is done, the inflater once zlib has consumed it, the counting pass),
 * never by a stage that passes it on; chunks that leave through `save()`'s
 * stream are the caller's and are left alone.
 *
 * @module
 */

// Buffers wholly ours, and views we were handed that share a buffer with
// other views (zlib fills a 256 KiB buffer across writes), with how many of
// that buffer's bytes have been released so far.
const owned = new WeakSet<ArrayBufferLike>();
const claimed = new WeakSet<ReadableStream<Uint8Array>>();
const parts = new WeakSet<Uint8Array>();
const releasedBytes = new WeakMap<ArrayBufferLike, number>();
// Of a buffer handed out in marked parts: the bytes handed out, and whether
// its producer has gone on to another buffer (it hands out no more of it).
const handedBytes = new WeakMap<ArrayBufferLike, number>();
const ended = new WeakSet<ArrayBufferLike>();
// Buffers whose producer takes them back to fill again (see `ownChunk`).
const recyclers = new WeakMap<
  ArrayBufferLike,
  (buffer: ArrayBuffer) => boolean
>();

// ES2024's `transfer`, where the runtime has it (not Node 20). Typed here:
// the npm build's lib predates it.
type DetachableBuffer = ArrayBuffer & { transfer(length: number): ArrayBuffer };
const detach: ((buffer: ArrayBuffer) => void) | undefined =
  typeof (ArrayBuffer.prototype as Partial<DetachableBuffer>).transfer ===
      "function"
    ? (buffer) => void (buffer as DetachableBuffer).transfer(0)
    : undefined;

/**
 * Whether `releaseChunk` frees a buffer at once here (the runtime has
 * `ArrayBuffer.prototype.transfer`: Deno, Bun; not Node 20, where a released
 * buffer waits for the collector).
 *
 * @example
 * ```ts
 * import { freesAtOnce } from "./chunk_release.ts";
 * const pool: ArrayBuffer[] = freesAtOnce ? [] : [new ArrayBuffer(1024)];
 * ```
 */
export const freesAtOnce: boolean = detach !== undefined;

// Where buffers cannot be freed early, the process exposes V8's `gc` (the
// npm bin passes --expose-gc) and is the CLI's own, every COLLECT_EVERY
// bytes of dropped buffers ask for a collection, every MAJOR_EVERY-th of
// them a full one: the buffers' memory lives outside V8's 1 MiB young generation, which the
// little JS each chunk costs fills only after tens of MiB of them, and what
// was promoted to the old generation (chunks that waited) dies there until a
// full collection. Measured, npm bin, 8 x 24 MiB throttled pull to stdout,
// concurrency 3, medians: peak RSS compressed 106 -> 94 MiB, uncompressed
// 102.5 -> 99, walls same (docs/PERFORMANCE.md). Counting zlib's output too, or
// every 1 MiB, promoted more and measured worse.
const COLLECT_EVERY = 2 * 1024 * 1024;
const MAJOR_EVERY = 4;
let garbage = 0; // bytes dropped since the last collection asked for
let collections = 0;
// Off unless the process is ours: a library inside someone else's process
// (which may run with --expose-gc for its own reasons) must not force
// collections of a host heap that may be large, every few MiB.
let collectDropped = false;

/**
 * Lets `countGarbage` ask V8 for collections. The CLI turns this on: it
 * owns its process and its heap is small. A library inside someone else's
 * process leaves it off, so it never forces collections of a host's heap.
 *
 * @example
 * ```ts
 * import { collectDroppedBuffers } from "./chunk_release.ts";
 * collectDroppedBuffers(true); // at the start of the command
 * ```
 */
export function collectDroppedBuffers(enabled: boolean): void {
  collectDropped = enabled;
}

/**
 * Tells that `bytes` of buffers were just dropped (Node's fresh buffer per
 * socket read, copied downstream): where the runtime cannot free them at
 * once (Node 20), exposes `gc` and `collectDroppedBuffers(true)` was called
 * (the CLI), every 2 MiB of them asks V8 for a young-generation collection,
 * every fourth time a full one.
 *
 * @example
 * ```ts
 * import { countGarbage } from "./chunk_release.ts";
 * const chunk = new Uint8Array(64 * 1024);
 * const copy = chunk.slice();
 * countGarbage(chunk.byteLength); // chunk is dropped now
 * ```
 */
export function countGarbage(bytes: number): void {
  if (detach || !collectDropped) return;
  garbage += bytes;
  if (garbage < COLLECT_EVERY) return;
  garbage -= COLLECT_EVERY;
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== "function") return;
  collections = (collections + 1) % MAJOR_EVERY;
  gc({ type: collections === 0 ? "major" : "minor" });
}

function spansBuffer(chunk: Uint8Array): boolean {
  return chunk.byteOffset === 0 &&
    chunk.byteLength === chunk.buffer.byteLength;
}

function isShared(chunk: Uint8Array): boolean {
  return typeof SharedArrayBuffer === "function" &&
    chunk.buffer instanceof SharedArrayBuffer;
}

/**
 * Marks `chunk` as one this library alone holds, to be freed by its last
 * reader (`releaseChunk`). Returns `chunk`. With `recycle`, a chunk that
 * spans its buffer is handed back to its producer instead of freed, to be
 * filled again (a file read's buffers: a fresh buffer faults in fresh pages
 * on every read, and Node 20, which cannot free a buffer early, collects
 * them late); `recycle` returns whether it kept the buffer, and one it did
 * not keep is freed.
 *
 * @example
 * ```ts
 * import { ownChunk } from "./chunk_release.ts";
 * const chunk = ownChunk(new Uint8Array(256 * 1024));
 * ```
 */
export function ownChunk<T extends Uint8Array>(
  chunk: T,
  recycle?: (buffer: ArrayBuffer) => boolean,
): T {
  if (isShared(chunk) || chunk.byteLength === 0) return chunk;
  if (recycle && spansBuffer(chunk)) {
    owned.add(chunk.buffer);
    recyclers.set(chunk.buffer, recycle);
    return chunk;
  }
  if (!detach) return chunk;
  if (spansBuffer(chunk)) owned.add(chunk.buffer);
  else if (!parts.has(chunk)) {
    parts.add(chunk);
    const handed = handedBytes.get(chunk.buffer) ?? 0;
    handedBytes.set(chunk.buffer, handed + chunk.byteLength);
  }
  return chunk;
}

/**
 * Claims the chunks `stream` will give, for its one reader: the caller,
 * which makes sure the last reader of each chunk releases it. Only a
 * producer's own stream (see `ownChunkOf`) is affected. Returns `stream`.
 *
 * @example
 * ```ts
 * import { claimChunks } from "./chunk_release.ts";
 * declare const blob: ReadableStream<Uint8Array>;
 * const chunks = claimChunks(blob);
 * ```
 */
export function claimChunks(
  stream: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  claimed.add(stream);
  return stream;
}

/**
 * For a producer that gives each chunk of `stream` (its own) a fresh buffer:
 * marks `chunk` as the library's when the stream's reader claimed it.
 * Returns `chunk`.
 *
 * @example
 * ```ts
 * import { ownChunkOf } from "./chunk_release.ts";
 * const stream: ReadableStream<Uint8Array> = new ReadableStream({
 *   pull(controller) {
 *     controller.enqueue(ownChunkOf(stream, new Uint8Array(256 * 1024)));
 *   },
 * });
 * ```
 */
export function ownChunkOf<T extends Uint8Array>(
  stream: ReadableStream<Uint8Array>,
  chunk: T,
  recycle?: (buffer: ArrayBuffer) => boolean,
): T {
  return claimed.has(stream) ? ownChunk(chunk, recycle) : chunk;
}

/**
 * For a producer that has copied `chunk` (a chunk of `stream`, its own) and
 * drops it: frees it now when the stream's reader claimed it and the chunk
 * spans its buffer. A view of part of a buffer is left to the collector:
 * the rest of that buffer may be bytes of another's (a runtime's pool, or a
 * caller's own array).
 *
 * @example
 * ```ts
 * import { releaseCopied } from "./chunk_release.ts";
 * declare const stream: ReadableStream<Uint8Array>, chunk: Uint8Array;
 * const joined = new Uint8Array(256 * 1024);
 * joined.set(chunk);
 * const filled = chunk.byteLength; // read first: freeing empties it
 * releaseCopied(stream, chunk);
 * ```
 */
export function releaseCopied(
  stream: ReadableStream<Uint8Array>,
  chunk: Uint8Array,
): void {
  if (claimed.has(stream) && spansBuffer(chunk)) releaseChunk(ownChunk(chunk));
}

/**
 * Frees `chunk`'s memory now if it was marked with `ownChunk`; call it where
 * nothing will read the chunk again. Any other chunk is left as it is.
 *
 * @example
 * ```ts
 * import { ownChunk, releaseChunk } from "./chunk_release.ts";
 * const chunk = ownChunk(new Uint8Array(256 * 1024));
 * releaseChunk(chunk); // chunk.byteLength is now 0 where transfer exists
 * ```
 */
export function releaseChunk(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (owned.has(buffer) && spansBuffer(chunk)) {
    owned.delete(buffer);
    const recycle = recyclers.get(buffer);
    recyclers.delete(buffer);
    if (!recycle?.(buffer as ArrayBuffer)) detach?.(buffer as ArrayBuffer);
  } else if (!detach) return;
  else if (parts.delete(chunk)) {
    // Each part counts once; the buffer goes when every byte of it has, or
    // every part handed out once its producer has gone on.
    releasedBytes.set(
      buffer,
      (releasedBytes.get(buffer) ?? 0) + chunk.byteLength,
    );
    freeIfReleased(buffer);
  }
}

/**
 * Tells that the producer of `buffer`'s marked parts hands out no more of
 * it (zlib has gone on to a fresh buffer, leaving a tail it never filled,
 * or handed out as a copy): the buffer is freed once every part handed out
 * has been released, now if they all have been. A buffer no marked part was
 * handed out of is left as it is.
 *
 * @example
 * ```ts
 * import { ownChunk, partsEnded, releaseChunk } from "./chunk_release.ts";
 * const buffer = new Uint8Array(256 * 1024);
 * const part = ownChunk(buffer.subarray(0, 1000));
 * releaseChunk(part); // the other bytes may still be handed out
 * partsEnded(buffer.buffer); // they never will: freed now
 * ```
 */
export function partsEnded(buffer: ArrayBufferLike): void {
  if (!detach || !handedBytes.has(buffer)) return;
  ended.add(buffer);
  freeIfReleased(buffer);
}

function freeIfReleased(buffer: ArrayBufferLike): void {
  const released = releasedBytes.get(buffer) ?? 0;
  if (
    released >= buffer.byteLength ||
    (ended.has(buffer) && released >= handedBytes.get(buffer)!)
  ) {
    releasedBytes.delete(buffer);
    handedBytes.delete(buffer);
    ended.delete(buffer);
    detach!(buffer as ArrayBuffer);
  }
}
