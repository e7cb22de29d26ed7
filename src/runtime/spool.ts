/**
 * A spool: an anonymous temporary file that bytes are appended to once and
 * ranges of which are read back any number of times, concurrently. A
 * gzip-compressed archive is gunzipped into one while it is indexed, so its
 * members are then read with positioned reads instead of gunzipping the
 * archive again from its start for each (see `archive_index.ts`).
 *
 * The file is created 0600 in the system's temp directory and unlinked at
 * once (POSIX keeps an open file's bytes until it is closed), so nothing is
 * left behind, whatever ends the process. The file is closed by `close()`,
 * or once the spool is garbage-collected.
 *
 * @module
 */

import { importNode } from "./_import.ts";
import { writeAllAt } from "./file_sink.ts";
import {
  type ByteRange,
  type PositionedReader,
  streamFileRange,
} from "./fs.ts";

/** Bytes written once, read back by range. */
export interface Spool {
  /** Bytes written so far. */
  readonly size: number;
  /** Appends bytes; resolves once they are written. */
  write(bytes: Uint8Array): Promise<void>;
  /** A range of what was written, as a pull-based stream. */
  openRead(range: ByteRange): ReadableStream<Uint8Array>;
  /** Closes the file (streams still open then error). */
  close(): Promise<void>;
}

type FileHandle = Awaited<
  ReturnType<typeof import("node:fs/promises").open>
>;

// Closes a spool's file once the spool is collected: the handle is held here,
// so Node never closes it on collection itself (which warns).
const closer = new FinalizationRegistry<FileHandle>((handle) => {
  handle.close().catch(() => {});
});

/**
 * A new spool in the temp directory, or `undefined` where the runtime has no
 * `node:fs` or no temp file can be made (no permission, no space).
 *
 * @example
 * ```ts
 * import { createSpool } from "./spool.ts";
 * const spool = await createSpool();
 * if (spool) {
 *   await spool.write(new TextEncoder().encode("hello"));
 *   const stream = spool.openRead({ start: 1, length: 3 }); // "ell"
 *   await spool.close();
 * }
 * ```
 */
export async function createSpool(): Promise<Spool | undefined> {
  const fsp = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  const os = await importNode<typeof import("node:os")>("node:os");
  const path = await importNode<typeof import("node:path")>("node:path");
  if (!fsp || !os || !path) return undefined;
  let dir: string | undefined;
  let handle: FileHandle;
  try {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "docker-save-spool-"));
    const file = path.join(dir, "archive.tar");
    handle = await fsp.open(file, "w+", 0o600);
    try {
      await fsp.unlink(file);
      await fsp.rmdir(dir);
      dir = undefined;
    } catch {
      // Windows cannot unlink an open file: removed on close instead.
      dir = file;
    }
  } catch {
    if (dir) {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    }
    return undefined;
  }
  const leftover = dir;
  let size = 0;
  let closed = false;
  const spool: Spool = {
    get size() {
      return size;
    },
    async write(bytes) {
      await writeAllAt(handle, bytes, size);
      size += bytes.byteLength;
    },
    openRead(range) {
      // The reader holds the spool, so the file outlives every stream.
      const reader: PositionedReader & { spool: Spool } = {
        spool,
        read: (buffer, offset, length, position) =>
          handle.read(buffer, offset, length, position),
      };
      return streamFileRange(
        reader,
        range,
        "the spooled archive",
        () => Promise.resolve(),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      closer.unregister(spool);
      await handle.close();
      if (leftover) {
        await fsp.rm(path.dirname(leftover), { recursive: true, force: true })
          .catch(() => {});
      }
    },
  };
  closer.register(spool, handle, spool);
  return spool;
}
