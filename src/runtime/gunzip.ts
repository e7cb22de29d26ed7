/**
 * Streaming gunzip that reads every member of a multi-member gzip and pulls
 * its input only as its output is read: `node:zlib` where present (native),
 * otherwise `fflate`'s pure-JS gunzip. `DecompressionStream` is not used: on
 * spec-following runtimes (Deno, Chromium) it rejects the bytes after the
 * first member. Neither is `Duplex.toWeb(zlib)`: its readable side queues up
 * to 16384 chunks (Node 20) or 65536 (Deno), so it read a whole layer ahead
 * of a slow consumer (measured: 532 MiB blob, ~630 MiB RSS).
 *
 * @module
 */

import { importNode } from "./_import.ts";

/** Which implementation `createGunzip` uses. */
export type GunzipBackend = "node" | "web";

// zlib's output chunk. Measured (256 MiB, half random): 64 KiB chunks ran
// at 235 MB/s on Bun against 500 MB/s at 256 KiB; Node and Deno gain too.
const ZLIB_CHUNK_SIZE = 256 * 1024;
// fflate inflates each push at once, so it is fed slices this big: deflate
// expands at most ~1032×, so one step's output stays bounded (16 MiB for
// all-zero data, ~64 KiB for typical layers). zlib needs no slicing: it
// stops producing when its readable side is full, and resumes as it is read.
const FFLATE_SLICE = 16 * 1024;
// More input is fed, while the reader is busy, only until this much output
// is waiting: inflating overlaps the consumer's work, within a bound.
const READ_AHEAD = 1024 * 1024;

/** An inflater driven from the reading side. */
interface Inflater {
  /** The most input one write may take. */
  slice: number;
  /** Feeds input; resolves when it is consumed, or sooner with output. */
  write(chunk: Uint8Array): Promise<void> | void;
  /** Signals the end of input. */
  end(): void;
  /** Takes output: a chunk, `null` when none is ready, or `"end"`. */
  read(): Uint8Array | null | "end";
  /** Bytes of output waiting to be read. */
  buffered(): number;
  /**
   * Resolves when output (or the end, or an error) may be ready without
   * more input; never, for an inflater whose output only comes from input.
   */
  ready(): Promise<void>;
  /** Frees it early. */
  destroy(): void;
}

/**
 * A transform from gzip bytes to the bytes they hold. Input is pulled only
 * when the reader wants output that is not ready yet, so read-ahead stays
 * within one input slice and one output chunk.
 *
 * @param backend force one implementation (tests use it for the fallback)
 * @example
 * ```ts
 * import { createGunzip } from "./gunzip.ts";
 * declare const gz: ReadableStream<Uint8Array>;
 * const plain = gz.pipeThrough(await createGunzip());
 * ```
 */
export async function createGunzip(
  backend?: GunzipBackend,
): Promise<ReadableWritablePair<Uint8Array, Uint8Array>> {
  if (backend !== "web") {
    const zlib = await importNode<typeof import("node:zlib")>("node:zlib");
    if (zlib) return pullTransform(zlibInflater(zlib));
    if (backend === "node") {
      throw new Error("Cannot gunzip: node:zlib is missing");
    }
  }
  return pullTransform(await fflateInflater());
}

function zlibInflater(zlib: typeof import("node:zlib")): Inflater {
  const z = zlib.createGunzip({ chunkSize: ZLIB_CHUNK_SIZE });
  let failed: unknown;
  let ended = false;
  z.on("error", (error) => failed = error);
  z.on("end", () => ended = true);
  return {
    slice: Infinity,
    write: (chunk) =>
      new Promise<void>((resolve) => {
        z.write(chunk, () => resolve());
      }),
    end: () => z.end(),
    read() {
      if (failed) throw failed;
      const chunk = z.read() as Uint8Array | null;
      if (chunk) {
        return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
      return ended ? "end" : null;
    },
    buffered: () => z.readableLength,
    ready: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          z.off("readable", done).off("end", done).off("error", done);
          resolve();
        };
        z.on("readable", done).on("end", done).on("error", done);
      }),
    destroy: () => z.destroy(),
  };
}

async function fflateInflater(): Promise<Inflater> {
  const { Gunzip } = await import("fflate");
  const out: Uint8Array[] = [];
  let ended = false;
  const gunzip = new Gunzip((chunk) => {
    if (chunk.byteLength) out.push(chunk);
  });
  return {
    slice: FFLATE_SLICE,
    write: (chunk) => gunzip.push(chunk, false),
    end() {
      gunzip.push(new Uint8Array(0), true);
      ended = true;
    },
    read: () => out.shift() ?? (ended ? "end" : null),
    // Output only comes from write() and end(): nothing else to wait for.
    ready: () => new Promise<void>(() => {}),
    buffered: () => out.reduce((n, chunk) => n + chunk.byteLength, 0),
    destroy() {},
  };
}

/**
 * A transform pair around an inflater, driven by the reader: input is fed,
 * one chunk (or slice) at a time, only while less than `READ_AHEAD` bytes of
 * output wait to be read.
 */
function pullTransform(
  inflater: Inflater,
): ReadableWritablePair<Uint8Array, Uint8Array> {
  const { readable: input, writable } = new TransformStream<
    Uint8Array,
    Uint8Array
  >();
  const reader = input.getReader();
  let pending: Uint8Array = new Uint8Array(0);
  let inputDone = false;
  let failed: { error: unknown } | undefined;
  let feeding: Promise<void> | undefined;

  const feed = async () => {
    while (!inputDone && inflater.buffered() < READ_AHEAD) {
      if (pending.byteLength === 0) {
        const next = await reader.read();
        if (next.done) {
          inputDone = true;
          inflater.end();
          return;
        }
        pending = next.value;
      }
      const slice = pending.subarray(0, inflater.slice);
      pending = pending.subarray(slice.byteLength);
      await inflater.write(slice);
    }
  };
  // One feeder at a time, and only when it has work; its failure is
  // reported by the next pull. `undefined` when there is nothing to feed.
  const startFeeding = () => {
    if (inputDone || inflater.buffered() >= READ_AHEAD) return feeding;
    feeding ??= feed()
      .catch((error) => {
        failed = { error };
      })
      .finally(() => {
        feeding = undefined;
      });
    return feeding;
  };

  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (failed) throw failed.error;
        const chunk = inflater.read();
        if (chunk === "end") return controller.close();
        if (chunk) {
          startFeeding();
          return controller.enqueue(chunk);
        }
        const fed = startFeeding();
        await (fed ? Promise.race([fed, inflater.ready()]) : inflater.ready());
      }
    },
    cancel(reason) {
      inflater.destroy();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { readable, writable };
}
