/**
 * A `SeekableSink` over a `node:fs` file handle (Node, Deno and Bun all
 * have one): appends with one write in flight, patches and truncates in
 * order after it.
 *
 * @module
 */

import type { SeekableSink } from "./seekable_sink.ts";
import { releaseChunk } from "./chunk_release.ts";

/** The part of a `node:fs/promises` `FileHandle` the sink uses. */
export interface WritableFileHandle {
  /** Writes `buffer` from `offset` at `position` (the end when null). */
  write(
    buffer: Uint8Array,
    offset?: number,
    length?: number,
    position?: number | null,
  ): Promise<{ bytesWritten: number }>;
  /** Cuts the file. */
  truncate(length?: number): Promise<void>;
}

/**
 * Writes all of `bytes` at `position`: `write()` may write less than asked,
 * so it loops until the bytes are out.
 *
 * @example
 * ```ts
 * import { open } from "node:fs/promises";
 * import { writeAllAt } from "./file_sink.ts";
 * const handle = await open("out.bin", "w");
 * await writeAllAt(handle, new Uint8Array(1024), 0);
 * ```
 */
export async function writeAllAt(
  file: Pick<WritableFileHandle, "write">,
  bytes: Uint8Array,
  position: number,
): Promise<void> {
  for (let done = 0; done < bytes.byteLength;) {
    const { bytesWritten } = await file.write(
      bytes,
      done,
      bytes.byteLength - done,
      position + done,
    );
    done += bytesWritten;
  }
}

/**
 * A sink writing to `file` from position 0. With `releaseWritten` (for a
 * writer that is the last reader of every chunk it writes, as
 * `saveToFile`'s is) each chunk is released once written (see
 * `chunk_release.ts`).
 *
 * @example
 * ```ts
 * import { fileSink } from "./file_sink.ts";
 * import { open } from "node:fs/promises";
 * const sink = fileSink(await open("out.tar", "w"));
 * await sink.write(new Uint8Array(512));
 * ```
 */
export function fileSink(
  file: WritableFileHandle,
  releaseWritten = false,
): SeekableSink {
  let position = 0;
  // Writes go out in order; at most one is in flight while the next chunk
  // is produced, so the disk and the pipeline overlap.
  let pending: Promise<void> = Promise.resolve();
  const writeFully = (bytes: Uint8Array, at: number) =>
    writeAllAt(file, bytes, at);
  const then = (step: () => Promise<void>) => {
    const previous = pending;
    pending = previous.then(step);
    pending.catch(() => {}); // reported to the next caller
    return previous;
  };
  return {
    write(bytes) {
      const at = position;
      position += bytes.byteLength;
      return then(async () => {
        await writeFully(bytes, at);
        if (releaseWritten) releaseChunk(bytes);
      });
    },
    async writeAt(at, bytes) {
      then(async () => {
        await writeFully(bytes, at);
        if (releaseWritten) releaseChunk(bytes);
      });
      await pending;
    },
    async truncate(length) {
      then(() => file.truncate(length));
      await pending;
      position = length;
    },
    flush: () => pending,
  };
}
