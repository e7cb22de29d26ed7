/**
 * Layer blobs fetched ahead, side by side, into a bounded buffer: when stage
 * 4 reaches a layer, the blobs of the next `concurrency - 1` layers start
 * downloading too, so a pull over links capped per connection (registries,
 * CDNs) waits for about 1/N of the sum instead of all of it, as docker's
 * `max-concurrent-downloads` does.
 *
 * The bytes fetched ahead wait in memory, at most `budget` bytes for all
 * layers together; a download that finds the buffer full pauses (its TCP
 * window closes) until the writer drains it. The layer being written reads
 * through with a small read-ahead whatever the buffer holds, so the writer
 * never waits on the budget. Nothing is verified here: the bytes go to
 * stage 4 unchanged, which hashes them as it does any blob. Each blob
 * fetched ahead serves its layer's first open from offset 0; any other open
 * reads the source directly. A layer whose uncompressed tar is stored apart
 * from its blob (a docker archive's `layer.tar`, in uncompressed output) is
 * not fetched ahead: its blob is never read.
 *
 * @module
 */

import { describeLayer, type LayerDescription } from "../model/layer.ts";
import { claimChunks, releaseChunk } from "../runtime/chunk_release.ts";
import { isLayerEntry, type LayerEntry, type PlannedEntry } from "./entries.ts";

/** Layers fetched at once by default: docker's `max-concurrent-downloads`. */
export const DEFAULT_CONCURRENCY = 3;

/**
 * Bytes fetched ahead and not yet written, for all layers together. 16 MiB:
 * measured on the 8 × 24 MiB pull at 24 MB/s per connection
 * (bench/pull8.bench.ts), stdout, concurrency 3, 32 MiB gave about the same
 * walls for 15–25 MiB more peak RSS.
 */
export const PREFETCH_BUDGET = 16 * 1024 * 1024;

// What the layer being written may hold ahead of its reader.
const HEAD_READ_AHEAD = 1024 * 1024;

/**
 * Checks a `concurrency` option: a positive integer, or `undefined` for the
 * default.
 *
 * @example
 * ```ts
 * import { layerConcurrency } from "./prefetch.ts";
 * layerConcurrency(undefined); // 3
 * ```
 */
export function layerConcurrency(value: number | undefined): number {
  if (value === undefined) return DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot save: concurrency must be a positive integer, got ${value}`,
    );
  }
  return value;
}

/**
 * The prefetcher of one save. Stage 4 asks it for each layer's description
 * (`describe`) instead of `describeLayer`; asking for a layer starts the
 * next ones. `cancel()` cancels every download under way.
 *
 * @example
 * ```ts
 * import { LayerPrefetch } from "./prefetch.ts";
 * import type { LayerEntry, PlannedEntry } from "./entries.ts";
 * declare const planned: PlannedEntry[], entry: LayerEntry;
 * const prefetch = new LayerPrefetch(planned, { concurrency: 3, compressed: true });
 * const layer = await prefetch.describe(entry);
 * const blob = await layer.blob.open(0); // fetched ahead where it was
 * ```
 */
export class LayerPrefetch {
  #layers: LayerEntry[];
  #concurrency: number;
  #compressed: boolean;
  #described = new Map<LayerEntry, Promise<LayerDescription>>();
  #ahead = new Map<LayerEntry, Download>();
  #budget: Budget;
  #cancelled = false;

  /**
   * @param planned the plan's members, in order
   * @param options how many layers at once; whether layers are written as
   *   stored (else a stored uncompressed tar is read instead of the blob)
   */
  constructor(
    planned: Iterable<PlannedEntry>,
    options: { concurrency: number; compressed: boolean; budget?: number },
  ) {
    this.#layers = [...planned].filter(isLayerEntry);
    this.#concurrency = options.concurrency;
    this.#compressed = options.compressed;
    this.#budget = new Budget(options.budget ?? PREFETCH_BUDGET);
  }

  /**
   * `describeLayer` of the entry's layer, whose blob opens from what was
   * fetched ahead; starts fetching the layers after it.
   */
  async describe(entry: LayerEntry): Promise<LayerDescription> {
    const layer = await this.#describe(entry);
    this.#startAfter(entry);
    const download = this.#ahead.get(entry);
    if (!download) return layer;
    return {
      ...layer,
      blob: {
        seeks: layer.blob.seeks,
        open: (offset) => {
          if (offset === 0 && this.#ahead.get(entry) === download) {
            this.#ahead.delete(entry);
            return Promise.resolve(download.take());
          }
          return layer.blob.open(offset);
        },
      },
    };
  }

  /** Cancels every download under way; later ones do not start. */
  cancel(reason?: unknown): void {
    this.#cancelled = true;
    for (const download of this.#ahead.values()) download.cancel(reason);
    this.#ahead.clear();
  }

  #describe(entry: LayerEntry): Promise<LayerDescription> {
    let described = this.#described.get(entry);
    if (!described) {
      described = describeLayer(entry.image, entry.layer);
      this.#described.set(entry, described);
    }
    return described;
  }

  #startAfter(entry: LayerEntry): void {
    const index = this.#layers.indexOf(entry);
    if (index < 0 || this.#cancelled) return;
    const end = Math.min(this.#layers.length, index + this.#concurrency);
    for (let i = index + 1; i < end; i++) {
      const next = this.#layers[i];
      if (this.#ahead.has(next) || this.#described.has(next)) continue;
      const download = new Download(this.#budget);
      this.#ahead.set(next, download);
      this.#describe(next).then(
        (layer) => {
          if (
            !this.#compressed && !next.asStored && layer.uncompressed &&
            !layer.uncompressed.isBlob
          ) {
            this.#ahead.delete(next);
            return download.cancel();
          }
          return download.start(() => layer.blob.open(0));
        },
        // Reported when stage 4 reaches the layer and describes it itself.
        () => {
          this.#ahead.delete(next);
          download.cancel();
        },
      );
    }
  }
}

// The bytes fetched ahead and not yet written, and who waits for room.
class Budget {
  bytes = 0;
  #waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  get full(): boolean {
    return this.bytes >= this.limit;
  }

  add(n: number): void {
    this.bytes += n;
  }

  remove(n: number): void {
    this.bytes -= n;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const wake of waiting) wake();
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

// One blob downloading into the shared buffer. Until taken it pauses when
// the buffer is full; once taken (its layer is being written) it reads at
// most HEAD_READ_AHEAD ahead of its reader.
class Download {
  #budget: Budget;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #taken = false;
  #done = false;
  #error: { reason: unknown } | undefined;
  #cancelled = false;
  #wakeReader: (() => void) | undefined;
  #wakePump: (() => void) | undefined;

  constructor(budget: Budget) {
    this.#budget = budget;
  }

  async start(open: () => Promise<ReadableStream<Uint8Array>>): Promise<void> {
    try {
      // This download is the blob's one reader: its chunks may be freed by
      // their last reader (chunk_release.ts), as stage 4's own reads are.
      const stream = claimChunks(await open());
      if (this.#cancelled) return void stream.cancel().catch(() => {});
      this.#reader = stream.getReader();
      while (!this.#cancelled) {
        await this.#room();
        if (this.#cancelled) break;
        const { done, value } = await this.#reader.read();
        if (done) break;
        if (this.#cancelled) {
          releaseChunk(value);
          break;
        }
        this.#queue.push(value);
        this.#queued += value.byteLength;
        this.#budget.add(value.byteLength);
        this.#wake();
      }
    } catch (reason) {
      this.#error = { reason };
    }
    this.#done = true;
    this.#wake();
  }

  // Waits until this download may read another chunk.
  async #room(): Promise<void> {
    for (;;) {
      if (this.#cancelled) return;
      if (this.#taken ? this.#queued < HEAD_READ_AHEAD : !this.#budget.full) {
        return;
      }
      if (this.#taken) {
        await new Promise<void>((resolve) => this.#wakePump = resolve);
      } else {
        await Promise.race([
          this.#budget.changed(),
          new Promise<void>((resolve) => this.#wakePump = resolve),
        ]);
      }
    }
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }

  /** The blob as a stream: what was fetched, then the rest as it comes. */
  take(): ReadableStream<Uint8Array> {
    this.#taken = true;
    this.#wakePump?.();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (this.#queue.length === 0 && !this.#done) {
          await new Promise<void>((resolve) => this.#wakeReader = resolve);
        }
        const chunk = this.#queue.shift();
        if (chunk) {
          this.#queued -= chunk.byteLength;
          this.#budget.remove(chunk.byteLength);
          const wake = this.#wakePump;
          this.#wakePump = undefined;
          wake?.();
          controller.enqueue(chunk);
        } else if (this.#error) controller.error(this.#error.reason);
        else controller.close();
      },
      cancel: (reason) => this.cancel(reason),
    }, { highWaterMark: 0 });
  }

  /** Stops the download and frees what it holds. */
  cancel(reason?: unknown): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#reader?.cancel(reason).catch(() => {});
    for (const chunk of this.#queue) releaseChunk(chunk);
    this.#budget.remove(this.#queued);
    this.#queue = [];
    this.#queued = 0;
    this.#done = true;
    this.#wakePump?.();
    this.#wake();
  }
}
