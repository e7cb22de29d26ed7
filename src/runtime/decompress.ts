/**
 * Streaming decompression of layer blobs (gzip, every member of a
 * multi-member gzip; zstd, every frame) that pulls its input only as its
 * output is read. gzip: `node:zlib` where present (native), else the
 * runtime's `DecompressionStream("gzip")` where it reads every member of a
 * multi-member gzip (native; Workers without `nodejs_compat`), else the
 * pure-JS `fflate`. On spec-following runtimes (Deno, Chromium)
 * `DecompressionStream` rejects the bytes after the first member, so it is
 * used only where a two-member probe (`readsEveryGzipMember`) comes out
 * whole. zstd: the pure-JS `fzstd` everywhere: Node 20's zlib has no zstd,
 * and Deno 2.9's and Bun 1.4's stop after a blob's first frame. Not used
 * either: `Duplex.toWeb(zlib)`, whose readable side queues up to 16384
 * chunks (Node 20) or 65536 (Deno), so it read a whole layer ahead of a slow
 * consumer (measured: 532 MiB blob, ~630 MiB RSS). This file is the one
 * place that probes for these.
 *
 * @module
 */

import { importNode } from "./_import.ts";
import { ownChunkOf, partsEnded, releaseChunk } from "./chunk_release.ts";
import { ZstdBlockScanner } from "./_zstd_blocks.ts";

/**
 * Which implementation a decompressor uses: `node:zlib`, the runtime's
 * `DecompressionStream`, or the pure-JS `fflate` / `fzstd` (`"web"`).
 */
export type GunzipBackend = "node" | "decompression-stream" | "web";

// "a" and "b", each its own gzip member.
const TWO_MEMBERS = new Uint8Array([
  31,
  139,
  8,
  0,
  0,
  0,
  0,
  0,
  2,
  255,
  75,
  4,
  0,
  67,
  190,
  183,
  232,
  1,
  0,
  0,
  0,
  31,
  139,
  8,
  0,
  0,
  0,
  0,
  0,
  2,
  255,
  75,
  2,
  0,
  249,
  239,
  190,
  113,
  1,
  0,
  0,
  0,
]);
let everyMember: Promise<boolean> | undefined;

/**
 * Whether the runtime has a `DecompressionStream` that reads every member
 * of a multi-member gzip (asked once: a two-member probe must give "ab").
 *
 * @example
 * ```ts
 * import { readsEveryGzipMember } from "./decompress.ts";
 * if (await readsEveryGzipMember()) console.log("native gunzip");
 * ```
 */
export function readsEveryGzipMember(): Promise<boolean> {
  return everyMember ??= (async () => {
    if (typeof DecompressionStream !== "function") return false;
    try {
      const plain = new Blob([TWO_MEMBERS]).stream()
        .pipeThrough(new DecompressionStream("gzip"));
      return await new Response(plain).text() === "ab";
    } catch {
      return false;
    }
  })();
}

/** A compression `createDecompressor` undoes. */
export type Compression = "gzip" | "zstd";

// zlib's output chunk. Measured (256 MiB, half random): 64 KiB chunks ran
// at 235 MB/s on Bun against 500 MB/s at 256 KiB; Node gains too. Deno's
// node:zlib allocates every output buffer zeroed (its FastBuffer: ~0.1 s of
// a 256 MiB layer's profile), and there 128 KiB pays (-o FILE, uncompressed,
// interleaved A/B, medians, CPU s: OCI layout 1.04 -> 0.93, registry
// 1.44 -> 1.24); not on Bun (0.82 -> 0.87) nor Node (1.91 -> 2.22, noisy).
const ZLIB_CHUNK_SIZE = "Deno" in globalThis ? 128 * 1024 : 256 * 1024;
// fflate decompresses each push at once, so it is fed slices this big:
// deflate expands at most ~1032×, so one step's output stays bounded (16 MiB
// for all-zero data, ~64 KiB for typical layers). zstd has no such ratio (an
// RLE block is 4 bytes for 128 KiB), so fzstd is fed up to the end of one
// block at a time instead (_zstd_blocks.ts). zlib needs no slicing: it stops
// producing when its readable side is full, and resumes as it is read.
const PUSH_SLICE = 16 * 1024;
// More input is fed, while the reader is busy, only until this much output
// is waiting: inflating overlaps the consumer's work, within a bound.
const READ_AHEAD = 1024 * 1024;

/** An inflater driven from the reading side. */
interface Inflater {
  /** The most input one write may take. */
  slice: number;
  /**
   * Whether chunks may be freed (zlib): the engine is done with an input
   * chunk once `write` has taken all of it, and hands out each output
   * buffer whole or in consecutive parts, never to fill it again.
   */
  freesChunks: boolean;
  /**
   * Feeds input; resolves when it is consumed, or sooner with output. An
   * inflater that takes only part of `chunk` returns how many bytes it took.
   */
  write(chunk: Uint8Array): Promise<void> | number | void;
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
 * import { createGunzip } from "./decompress.ts";
 * declare const gz: ReadableStream<Uint8Array>;
 * const plain = gz.pipeThrough(await createGunzip());
 * ```
 */
export function createGunzip(
  backend?: GunzipBackend,
): Promise<ReadableWritablePair<Uint8Array, Uint8Array>> {
  return createDecompressor("gzip", backend);
}

/**
 * A transform from gzip or zstd bytes to the bytes they hold, pulled like
 * `createGunzip`'s.
 *
 * @param backend force one implementation (tests use it for the fallback)
 * @example
 * ```ts
 * import { createDecompressor } from "./decompress.ts";
 * declare const zst: ReadableStream<Uint8Array>;
 * const plain = zst.pipeThrough(await createDecompressor("zstd"));
 * ```
 */
export async function createDecompressor(
  compression: Compression,
  backend?: GunzipBackend,
): Promise<ReadableWritablePair<Uint8Array, Uint8Array>> {
  if (backend === undefined || backend === "node") {
    const zlib = compression === "gzip"
      ? await importNode<typeof import("node:zlib")>("node:zlib")
      : undefined;
    if (zlib) {
      return pullTransform(
        zlibInflater(zlib.createGunzip({ chunkSize: ZLIB_CHUNK_SIZE })),
      );
    }
    if (backend) {
      throw new Error(`Cannot decompress ${compression} with node:zlib`);
    }
  }
  if (backend === undefined || backend === "decompression-stream") {
    if (compression === "gzip" && await readsEveryGzipMember()) {
      return new DecompressionStream("gzip") as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >;
    }
    if (backend) {
      throw new Error(
        `Cannot decompress ${compression} with DecompressionStream`,
      );
    }
  }
  return pullTransform(
    compression === "gzip" ? await fflateInflater() : await fzstdInflater(),
  );
}

function zlibInflater(z: import("node:zlib").Gunzip): Inflater {
  let failed: unknown;
  let ended = false;
  // The buffer zlib is handing out in parts. Once it hands out a part of
  // another, it never fills this one again: the parts it handed out are all
  // there will be (it may leave a tail unfilled, or, on Bun, hand some
  // output out as copies), so the buffer is freed once they are released.
  let filling: ArrayBufferLike | undefined;
  const goneOn = (next: ArrayBufferLike | undefined) => {
    if (filling && filling !== next) partsEnded(filling);
    filling = next;
  };
  z.on("error", (error) => failed = error);
  z.on("end", () => ended = true);
  return {
    slice: Infinity,
    // zlib calls back once the chunk is consumed and never reads it again,
    // and fills a fresh buffer once it has handed one out to its end.
    freesChunks: true,
    write: (chunk) =>
      new Promise<void>((resolve) => {
        z.write(chunk, () => resolve());
      }),
    end: () => z.end(),
    read() {
      if (failed) throw failed;
      const chunk = z.read() as Uint8Array | null;
      if (chunk) {
        if (chunk.byteLength < chunk.buffer.byteLength) goneOn(chunk.buffer);
        return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
      if (!ended) return null;
      goneOn(undefined);
      return "end";
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
    destroy: () => {
      z.destroy();
      goneOn(undefined);
    },
  };
}

async function fflateInflater(): Promise<Inflater> {
  const { Gunzip } = await import("fflate");
  return pushInflater((ondata) => new Gunzip(ondata));
}

async function fzstdInflater(): Promise<Inflater> {
  const { Decompress } = await import("fzstd");
  const scanner = new ZstdBlockScanner();
  const inflater = pushInflater((ondata) => new Decompress(ondata));
  return {
    ...inflater,
    slice: Infinity,
    // Up to the end of one block: one write, at most one block of output.
    write(chunk) {
      const taken = scanner.scan(chunk);
      inflater.write(chunk.subarray(0, taken));
      return taken;
    },
    end() {
      scanner.end();
      inflater.end();
    },
  };
}

// A synchronous push-style decompressor (fflate, fzstd) as an Inflater.
function pushInflater(
  create: (
    ondata: (chunk: Uint8Array, final?: boolean) => void,
  ) => { push(chunk: Uint8Array, final?: boolean): unknown },
): Inflater {
  const out: Uint8Array[] = [];
  let ended = false;
  const engine = create((chunk) => {
    if (chunk.byteLength) out.push(chunk);
  });
  return {
    slice: PUSH_SLICE,
    freesChunks: false,
    write: (chunk) => void engine.push(chunk, false),
    end() {
      engine.push(new Uint8Array(0), true);
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
  let current: Uint8Array | undefined; // the chunk `pending` is part of
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
        pending = current = next.value;
      }
      const slice = pending.subarray(0, inflater.slice);
      const taken = await inflater.write(slice);
      pending = pending.subarray(taken ?? slice.byteLength);
      if (pending.byteLength === 0 && current && inflater.freesChunks) {
        releaseChunk(current);
        current = undefined;
      }
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

  const readable: ReadableStream<Uint8Array> = new ReadableStream({
    async pull(controller) {
      for (;;) {
        if (failed) throw failed.error;
        const chunk = inflater.read();
        if (chunk === "end") return controller.close();
        if (chunk) {
          startFeeding();
          return controller.enqueue(
            inflater.freesChunks ? ownChunkOf(readable, chunk) : chunk,
          );
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
