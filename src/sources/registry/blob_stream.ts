/**
 * Blob streams that survive broken transfers: a pull-based stream of exactly
 * the bytes a blob has, from an offset, that resumes with `Range: bytes=N-`
 * from the byte reached (or restarts and skips N bytes when the server
 * ignores `Range`), as skopeo's `docker/body_reader.go` does. Each read runs
 * in the transport's one retry loop, so `attempts` counts failures without
 * progress; a cap on all breaks bounds a transfer that keeps breaking.
 *
 * Nothing here checks digests: `save()` does, while streaming.
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import {
  freesAtOnce,
  ownChunk,
  ownChunkOf,
  releaseChunk,
  releaseCopied,
} from "../../runtime/chunk_release.ts";
import {
  Exchange,
  type RegistryTransport,
  TransportError,
} from "./transport.ts";

// Chunks under SMALL_CHUNK are joined up to COALESCE bytes. workerd's fetch
// hands out 4 KiB chunks (measured: 34,000 for a 133 MiB blob), and the
// verifying, tar and response stages then cost more than the bytes. Deno's
// and Node's hand out up to 64 KiB: joined too, Deno's peak RSS on the
// 8-layer pull streamed to stdout was 3-4 MiB lower (bench/pull8.bench.ts).
const SMALL_CHUNK = 128 * 1024;
// How long a join waits for the next chunk: chunks already on their way come
// within it, so joins still fill; a link that stalls gets what came handed
// on instead of held back to fill the join (a closed output pipe is only
// seen on a write: held back, the CLI waited on a stalled blob for ever).
const JOIN_WAIT_MS = 10;
const LATER = Symbol("later");
const COALESCE = 256 * 1024;

// Where a released buffer cannot be freed at once (Node 20), joined buffers
// go back to a pool that every blob stream fills again: chunks that waited in
// the prefetch buffer outlived V8's young generation, and their garbage piled
// up until a full collection (8-layer pull to stdout: ~50 MiB of it, peak RSS
// 135 -> 102 MiB). At most SPARE_JOINS (20 MiB) wait there, and none once no
// blob is being read.
const SPARE_JOINS = 80;
const spareJoins: ArrayBuffer[] = [];
let blobsReading = 0; // blob streams being read

function recycleJoin(buffer: ArrayBuffer): boolean {
  if (blobsReading === 0 || buffer.byteLength !== COALESCE) return false;
  if (spareJoins.length >= SPARE_JOINS) return false;
  spareJoins.push(buffer);
  return true;
}
const recycle = freesAtOnce ? undefined : recycleJoin;

/**
 * The first `filled` bytes of `joined` as a chunk that is its whole buffer,
 * so that its last reader can free it (a view of part of a buffer is freed
 * only once every byte of that buffer was released, and the unfilled tail
 * never is); the 256 KiB buffer it was joined in is freed or kept at once.
 */
function fitted(joined: Uint8Array, filled: number): Uint8Array {
  if (filled === joined.byteLength) return joined;
  const chunk = joined.slice(0, filled);
  if (!recycle?.(joined.buffer as ArrayBuffer)) releaseChunk(ownChunk(joined));
  return chunk;
}

/**
 * Opens the blob once more: a 2xx response to a request with `headers`
 * (`range` when resuming), or a thrown error (`TransportError` to retry).
 *
 * @example
 * ```ts
 * import type { OpenBlob } from "./blob_stream.ts";
 * const open: OpenBlob = (headers) => fetch("https://cdn.example.com/l", { headers });
 * ```
 */
export type OpenBlob = (
  headers: Record<string, string>,
  exchange: Exchange,
) => Promise<Response>;

/**
 * Options of `resumableBlob`.
 *
 * @example
 * ```ts
 * import type { ResumableBlobOptions } from "./blob_stream.ts";
 * const options: ResumableBlobOptions = { whole: true };
 * ```
 */
export interface ResumableBlobOptions {
  /**
   * The blob is read whole (a config): each response is read within the
   * transport's `timeout` in all, not only `timeout` per chunk.
   * @default {false}
   */
  whole?: boolean;
}

/**
 * A stream of a blob's `size` bytes from byte `start`, resumed after a
 * broken or stalled transfer. A clean end with fewer bytes than `size` but
 * all the response promised is passed on as the end: `save()` reports the
 * size mismatch.
 *
 * @example
 * ```ts
 * import { resumableBlob } from "./blob_stream.ts";
 * import { RegistryTransport } from "./transport.ts";
 * const transport = new RegistryTransport({
 *   fetch, allowHttp: false,
 *   attempts: 5, delay: 500, maxDelay: 10_000, timeout: 60_000,
 * });
 * const url = "https://cdn.example.com/layer.tar.gz";
 * const stream = resumableBlob(transport, (headers, exchange) =>
 *   fetch(url, { headers, signal: exchange.attempt() }), 1234, "layer");
 * ```
 */
export function resumableBlob(
  transport: RegistryTransport,
  open: OpenBlob,
  size: number,
  what: string,
  start = 0,
  options: ResumableBlobOptions = {},
): ReadableStream<Uint8Array> {
  let offset = start; // the blob's bytes passed on (or skipped at start)
  let skip = 0; // bytes of the current response to drop (Range ignored)
  let received = 0; // bytes of the current response
  let length: number | undefined; // its Content-Length
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let deadline = Infinity; // of the current response, when read whole
  let breaks = 0; // failures in all
  const exchange = new Exchange();
  const maxBreaks = 4 * (transport.options.attempts + 1);

  const connect = async () => {
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const response = await open(headers, exchange);
    const range = parseContentRange(response.headers.get("content-range"));
    if (offset > 0 && response.status === 206 && range?.start === offset) {
      skip = 0;
    } else if (response.status === 206) {
      // A range we did not ask for: start over without one.
      exchange.controller.abort();
      await response.body?.cancel().catch(() => {});
      throw new TransportError(`${what}: unexpected Content-Range`);
    } else {
      skip = offset; // Range ignored: the whole blob again
    }
    const header = response.headers.get("content-length");
    length = header === null ? undefined : Number(header);
    received = 0;
    if (options.whole) deadline = Date.now() + transport.options.timeout;
    if (!response.body) throw new TransportError(`${what}: no body`);
    reader = response.body.getReader();
  };

  // The next chunk, or undefined at the end; a failure drops the response.
  const next = async (): Promise<Uint8Array | undefined> => {
    try {
      if (!reader) await connect();
      for (;;) {
        const { done, value } = await transport.readChunk(
          reader!,
          exchange,
          deadline,
        );
        if (done) {
          if (offset >= size || (length !== undefined && received >= length)) {
            return undefined;
          }
          throw new TransportError(
            `the transfer ended after ${offset} of ${size} bytes`,
          );
        }
        received += value.byteLength;
        let chunk = value;
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.byteLength);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.byteLength === 0) continue;
        }
        offset += chunk.byteLength;
        return chunk;
      }
    } catch (error) {
      reader?.cancel().catch(() => {});
      reader = undefined;
      exchange.controller.abort();
      if (error instanceof TransportError && ++breaks > maxBreaks) {
        throw new DockerSaveError(
          "REGISTRY_ERROR",
          `Cannot fetch ${what}: ${error.message} (${offset} of ${size} bytes read, ${breaks} attempts)`,
          { cause: error },
        );
      }
      throw error;
    }
  };

  let ended = false;
  // A read a join stopped waiting for: the next pull takes it up.
  let pending: Promise<Uint8Array | undefined> | undefined;
  const read = () => {
    const reading = pending ?? transport.retry(what, exchange, next);
    pending = undefined;
    return reading;
  };
  let counted = false; // in `blobsReading`
  const stopReading = () => {
    if (!counted) return;
    counted = false;
    if (--blobsReading === 0) spareJoins.length = 0;
  };
  // The body's only reader, so each chunk is a fresh buffer nobody else
  // holds (a claimed stream's may be freed). Small chunks are joined into
  // one of up to COALESCE bytes: every stage after this one costs per chunk.
  const stream: ReadableStream<Uint8Array> = new ReadableStream({
    pull: async (controller) => {
      if (!counted) {
        counted = true;
        blobsReading++;
      }
      try {
        await give(controller);
      } catch (error) {
        stopReading();
        throw error;
      }
    },
    cancel: async (reason) => {
      stopReading();
      exchange.cancel(reason);
      await reader?.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  // Enqueues the next chunk, joined, or closes the stream at the end.
  const give = async (controller: ReadableStreamDefaultController) => {
    const first = ended ? undefined : await read();
    if (!first) {
      stopReading();
      return controller.close();
    }
    if (first.byteLength >= SMALL_CHUNK) {
      return controller.enqueue(ownChunkOf(stream, first));
    }
    const joined = new Uint8Array(
      spareJoins.pop() ?? new ArrayBuffer(COALESCE),
    );
    joined.set(first);
    let filled = first.byteLength;
    // Copied: freed now, as the stages would have freed it (its length
    // read first: freeing empties it).
    releaseCopied(stream, first);
    while (filled < COALESCE) {
      const reading = read();
      const chunk = await within(reading, JOIN_WAIT_MS);
      if (chunk === LATER) {
        pending = reading;
        // Seen by the next pull; never left unhandled if none comes.
        reading.catch(() => {});
        break;
      }
      if (!chunk) {
        ended = true;
        break;
      }
      if (chunk.byteLength > COALESCE - filled) {
        controller.enqueue(
          ownChunkOf(stream, fitted(joined, filled), recycle),
        );
        return controller.enqueue(ownChunkOf(stream, chunk));
      }
      joined.set(chunk, filled);
      filled += chunk.byteLength;
      releaseCopied(stream, chunk);
    }
    controller.enqueue(ownChunkOf(stream, fitted(joined, filled), recycle));
  };
  return stream;
}

// The promise's value if it settles within `ms`, else LATER (the promise
// goes on).
async function within<T>(
  promise: Promise<T>,
  ms: number,
): Promise<T | typeof LATER> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<typeof LATER>((resolve) => {
        timer = setTimeout(() => resolve(LATER), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A `Content-Range: bytes START-END/TOTAL` header's start and total.
 *
 * @example
 * ```ts
 * import { parseContentRange } from "./blob_stream.ts";
 * parseContentRange("bytes 10-19/100"); // { start: 10, total: 100 }
 * ```
 */
export function parseContentRange(
  header: string | null,
): { start: number; total?: number } | undefined {
  const match = header?.match(/^bytes (\d+)-\d+\/(\d+|\*)$/);
  if (!match) return undefined;
  return {
    start: Number(match[1]),
    total: match[2] === "*" ? undefined : Number(match[2]),
  };
}
