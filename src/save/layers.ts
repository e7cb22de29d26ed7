/**
 * Stage 4 of `save()`, the one place planned members become members with a
 * size and a body that opens at any offset. The full stream (`save()`) and
 * the sized plan behind `saveSize()`/`saveResponse()` both read it; they
 * differ only in whether a layer may be read to learn its size.
 *
 * Where a layer's bytes come from is asked once (`describeLayer`). In
 * `"compressed"` mode a member is the blob as stored, sized from its
 * descriptor. In `"uncompressed"` mode (the reference's) its uncompressed
 * size must be in the tar header, before the body, so it comes from the
 * cheapest place that knows it: the uncompressed tar the source stores (a
 * plain blob, a docker archive's `layer.tar`), the source's own answer (a
 * gzip trailer), or a first streaming pass that decompresses and counts
 * without keeping anything.
 *
 * Every byte written from offset 0 is verified: the blob against its digest
 * and size (in the counting pass when there is one, else while writing),
 * the uncompressed bytes against the diff_id and size. A body opened at a
 * later offset cannot be hashed whole and is not.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import {
  type ByteSource,
  describeLayer,
  type LayerDescription,
} from "../model/layer.ts";
import { claimChunks, releaseChunk } from "../runtime/chunk_release.ts";
import { createDecompressor } from "../runtime/decompress.ts";
import { mapErrors, skipBytes } from "../util/streams.ts";
import {
  isDeferredEntry,
  isLayerEntry,
  type LayerEntry,
  LayerSizes,
  type PlannedEntry,
} from "./entries.ts";
import type { SaveSettings } from "./options.ts";
import {
  type ProgressListener,
  progressStream,
  type ProgressUpdate,
} from "./progress.ts";
import { VerifyStream } from "./verify.ts";
import { LayerPrefetch } from "./prefetch.ts";

/** A member whose size is known and whose body can be opened at an offset. */
export interface SizedMember {
  /** Member name. */
  name: string;
  /** Body size. */
  size: number;
  /**
   * Opens the body from `offset`. From 0 the body is verified; from later
   * offsets it cannot be hashed whole, so it is not.
   */
  open(offset: number): Promise<ReadableStream<Uint8Array>>;
  /** The body itself, for a small member held in memory. */
  bytes?: Uint8Array;
}

/**
 * A layer member whose size is learnt by writing it (`sizes: "defer"`): a
 * writer that can seek reserves its header, writes the body, then patches
 * the header, so the layer is decompressed once. `settle` tells stage 4 the
 * size, for the members planned after it.
 */
export interface UnsizedMember {
  /** Member name. */
  name: string;
  /** Unknown until the body is written. */
  size: undefined;
  /** Opens the whole body, verified (blob digest, diff_id). */
  open(): Promise<ReadableStream<Uint8Array>>;
  /** Records the size the written body had. */
  settle(size: number): void;
  /** The member with its size known, to write it again (a fallback). */
  sized(size: number): SizedMember;
}

/**
 * How stage 4 learns an uncompressed size nothing knows: `"count"` reads
 * the layer once first (a stream), `"defer"` gives an `UnsizedMember` (a
 * seekable writer), `"known"` gives `undefined` (the sized plan).
 */
export type SizeStrategy = "count" | "defer" | "known";

/**
 * Stage 4: resolves planned members, in order, into sized members. A layer
 * whose uncompressed size nothing knows is handled by the `SizeStrategy`.
 * `cancel()` stops a counting pass under way.
 *
 * @example
 * ```ts
 * import { LayerResolver } from "./layers.ts";
 * import type { PlannedEntry } from "./entries.ts";
 * declare const planned: PlannedEntry[];
 * import { resolveOptions } from "./options.ts";
 * const settings = resolveOptions({ layers: "compressed" });
 * const resolver = new LayerResolver(settings, "count");
 * for await (const member of resolver.members(planned)) console.log(member?.name);
 * ```
 */
export class LayerResolver {
  #verify: boolean;
  #compressed: boolean;
  #strategy: SizeStrategy;
  #onProgress: ProgressListener | undefined;
  #sizes = new LayerSizes();
  // Blobs whose digest a counting pass already checked.
  #checkedBlobs = new Set<string>();
  #abort = new AbortController();
  #concurrency: number;
  #prefetch: LayerPrefetch | undefined;

  /**
   * @param settings layer mode, verification and progress
   * @param strategy how a size nothing knows is learnt
   */
  constructor(
    settings: Pick<
      SaveSettings,
      "verify" | "compressed" | "onProgress" | "concurrency"
    >,
    strategy: SizeStrategy,
  ) {
    this.#verify = settings.verify;
    this.#compressed = settings.compressed;
    this.#strategy = strategy;
    this.#onProgress = settings.onProgress;
    this.#concurrency = settings.concurrency;
  }

  /**
   * Every planned member, resolved in order as it is asked for; a layer
   * whose size is unknown gives what the strategy says.
   */
  async *members(
    planned: Iterable<PlannedEntry>,
  ): AsyncGenerator<
    SizedMember | UnsizedMember | undefined,
    void,
    undefined
  > {
    const entries = [...planned];
    // The sized plan reads no body: nothing to fetch ahead.
    if (this.#concurrency > 1 && this.#strategy !== "known") {
      this.#prefetch = new LayerPrefetch(entries, {
        concurrency: this.#concurrency,
        compressed: this.#compressed,
      });
    }
    for (const entry of entries) {
      if (isDeferredEntry(entry)) {
        const built = await entry.build(this.#sizes);
        if (built) yield bytesMember(built.name, built.body as Uint8Array);
      } else if (isLayerEntry(entry)) {
        yield await this.#layerMember(entry);
      } else {
        yield bytesMember(entry.name, entry.body as Uint8Array);
      }
    }
  }

  /** Stops a counting pass under way (the output was cancelled). */
  cancel(reason?: unknown): void {
    this.#abort.abort(reason);
    this.#prefetch?.cancel(reason);
  }

  async #layerMember(
    entry: LayerEntry,
  ): Promise<SizedMember | UnsizedMember | undefined> {
    const layer = await (this.#prefetch?.describe(entry) ??
      describeLayer(entry.image, entry.layer));
    const onProgress = this.#onProgress;
    const progress: ProgressFor = (stream, phase, total) =>
      onProgress
        ? progressStream(stream, onProgress, {
          name: entry.name,
          digest: entry.layer.digest,
          phase,
          total,
        })
        : stream;
    if (this.#compressed || entry.asStored) {
      const size = entry.layer.size;
      return {
        name: entry.name,
        size,
        open: async (offset) => {
          if (offset > 0) return await layer.blob.open(offset);
          return progress(await openBlob(layer, this.#verify), "writing", size);
        },
      };
    }
    const size = await this.#uncompressedSize(entry, layer, progress);
    if (size === undefined) {
      return this.#strategy === "defer"
        ? this.#unsizedMember(entry, layer, progress)
        : undefined;
    }
    return this.#sizedMember(entry, layer, size, progress);
  }

  #sizedMember(
    entry: LayerEntry,
    layer: LayerDescription,
    size: number,
    progress: ProgressFor,
  ): SizedMember {
    this.#sizes.set(entry.layer, entry.diffId, size);
    const checks: ContentChecks = {
      blobDigest: this.#verify && !this.#checkedBlobs.has(entry.layer.digest),
      diffId: this.#verify ? entry.diffId : undefined,
      size,
    };
    return {
      name: entry.name,
      size,
      open: async (offset) => {
        if (offset > 0) {
          if (layer.uncompressed?.seeks) {
            return await layer.uncompressed.open(offset);
          }
          const whole = await openContent(layer, NO_CHECKS);
          return skipBytes(whole, offset);
        }
        return progress(await openContent(layer, checks), "writing", size);
      },
    };
  }

  // Written once and sized by the writer: the blob and diff_id are checked
  // as for any member; the size is what the body turns out to have.
  #unsizedMember(
    entry: LayerEntry,
    layer: LayerDescription,
    progress: ProgressFor,
  ): UnsizedMember {
    const checks: ContentChecks = {
      blobDigest: this.#verify,
      diffId: this.#verify ? entry.diffId : undefined,
      size: undefined,
    };
    return {
      name: entry.name,
      size: undefined,
      // Reported in the member's bytes, as every write is; its total is
      // what the write will learn.
      open: async () =>
        progress(
          await openContent(layer, checks, await openWhole(layer.blob)),
          "writing",
          undefined,
        ),
      settle: (size) => this.#sizes.set(entry.layer, entry.diffId, size),
      sized: (size) => {
        this.#checkedBlobs.add(entry.layer.digest);
        return this.#sizedMember(entry, layer, size, progress);
      },
    };
  }

  // The size from the cheapest place that knows it; a counting pass when
  // allowed and nothing else does.
  async #uncompressedSize(
    entry: LayerEntry,
    layer: LayerDescription,
    progress: ProgressFor,
  ): Promise<number | undefined> {
    const learnt = this.#sizes.get(entry.layer, entry.diffId) ??
      await layer.uncompressedSize();
    if (learnt !== undefined || this.#strategy !== "count") return learnt;
    const blob = progress(
      await openBlob(layer, this.#verify),
      "counting",
      entry.layer.size,
    );
    const size = await countBytes(
      await decompress(blob, layer),
      this.#abort.signal,
    );
    if (this.#verify) this.#checkedBlobs.add(entry.layer.digest);
    return size;
  }
}

// A stream reported to `onProgress` as read in a phase (as is without it).
type ProgressFor = (
  stream: ReadableStream<Uint8Array>,
  phase: ProgressUpdate["phase"],
  total: number | undefined,
) => ReadableStream<Uint8Array>;

/** What `openContent` checks of a layer's uncompressed bytes. */
interface ContentChecks {
  /** Hash the blob against its digest (when it is read). */
  blobDigest: boolean;
  /** The diff_id the uncompressed bytes must hash to; omit to skip. */
  diffId: string | undefined;
  /** The exact uncompressed size; omit to skip. */
  size: number | undefined;
}

const NO_CHECKS: ContentChecks = {
  blobDigest: false,
  diffId: undefined,
  size: undefined,
};

// Bytes opened from 0 are read by this stage alone (a stream has one
// reader): their chunks are claimed, so that those nobody else can hold are
// freed by their last reader (chunk_release.ts).
async function openWhole(
  bytes: ByteSource,
): Promise<ReadableStream<Uint8Array>> {
  return claimChunks(await bytes.open(0));
}

// The blob as stored, checked against its descriptor's size, and its digest
// when asked.
async function openBlob(
  layer: LayerDescription,
  verifyDigest: boolean,
  opened?: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const { descriptor } = layer;
  return (opened ?? await openWhole(layer.blob)).pipeThrough(
    new VerifyStream({
      digest: verifyDigest ? descriptor.digest : undefined,
      size: descriptor.size,
      code: "DIGEST_MISMATCH",
      label: `layer ${descriptor.digest}`,
    }),
  );
}

// The layer's uncompressed bytes: the stored tar when there is one, else the
// blob (opened here, or given) decompressed; checked as asked.
async function openContent(
  layer: LayerDescription,
  checks: ContentChecks,
  blob?: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const { descriptor } = layer;
  const stored = layer.uncompressed;
  let stream: ReadableStream<Uint8Array>;
  if (stored && !stored.isBlob) {
    stream = await openWhole(stored);
  } else {
    stream = await openBlob(layer, checks.blobDigest, blob);
    if (!stored) stream = await decompress(stream, layer);
  }
  if (checks.diffId === undefined && checks.size === undefined) return stream;
  return stream.pipeThrough(
    new VerifyStream({
      digest: checks.diffId,
      size: checks.size,
      code: "DIFF_ID_MISMATCH",
      sizeCode: "UNCOMPRESSED_SIZE_MISMATCH",
      label: `uncompressed layer ${descriptor.digest} (diff_id ${
        checks.diffId ?? "unchecked"
      })`,
    }),
  );
}

async function decompress(
  blob: ReadableStream<Uint8Array>,
  layer: LayerDescription,
): Promise<ReadableStream<Uint8Array>> {
  const { compression, descriptor } = layer;
  if (!compression || compression === "none") return blob;
  // zlib's errors name no layer; say which one failed.
  return mapErrors(
    claimChunks(blob.pipeThrough(await createDecompressor(compression))),
    (error) =>
      error instanceof DockerSaveError ? error : new DockerSaveError(
        "BAD_LAYER",
        `Cannot uncompress layer ${descriptor.digest}: ${
          (error as Error).message
        }`,
        { cause: error },
      ),
  );
}

// Reads a stream to its end, counting, stopping when `signal` aborts.
async function countBytes(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): Promise<number> {
  const reader = stream.getReader();
  const stop = () => reader.cancel(signal.reason).catch(() => {});
  if (signal.aborted) await stop();
  signal.addEventListener("abort", stop);
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) return size;
      size += value.byteLength;
      releaseChunk(value); // counted, not kept
    }
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

function bytesMember(name: string, body: Uint8Array): SizedMember {
  return {
    name,
    size: body.byteLength,
    bytes: body,
    open: (offset) =>
      Promise.resolve(
        new Blob([body.subarray(offset) as Uint8Array<ArrayBuffer>]).stream(),
      ),
  };
}
