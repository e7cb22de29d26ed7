/**
 * `saveToFile()`: `save()` into a file that appears only when complete. The
 * tarball is written to a temporary file beside the target, flushed to disk
 * and renamed over it at the end; on any error, or when its signal aborts,
 * the temporary file is removed.
 *
 * @module
 */

import { importNode } from "../runtime/_import.ts";
import { fileSink, type WritableFileHandle } from "../runtime/file_sink.ts";

export type { WritableFileHandle };
import type { SaveEntries, SaveOptions } from "./save.ts";
import { resolveOptions } from "./options.ts";
import { planSave } from "./pipeline.ts";
import { checkOutputPath, outputError } from "./output_path.ts";
import type { SeekableSink } from "../runtime/seekable_sink.ts";
import { writePlanSeekable } from "./write.ts";

/**
 * Options of `writeFileAtomic()`, `withAtomicFile()` and `saveToFile()`.
 *
 * @example
 * ```ts
 * import type { WriteFileOptions } from "./to_file.ts";
 * const options: WriteFileOptions = { signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface WriteFileOptions {
  /**
   * Stops the write: the temporary file is removed and the promise rejects
   * with the signal's reason, without waiting for a stalled source.
   */
  signal?: AbortSignal;
}

/**
 * Writes a stream to `path` atomically: a temporary file in the same folder,
 * flushed to disk and renamed over `path` only after the last byte; removed
 * on error or when `options.signal` aborts (the stream is then cancelled).
 * Needs `node:fs` (Node, Deno, Bun).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./to_file.ts";
 * await writeFileAtomic("out.bin", new Blob(["data"]).stream());
 * ```
 */
export function writeFileAtomic(
  path: string,
  stream: ReadableStream<Uint8Array>,
  options: WriteFileOptions = {},
): Promise<void> {
  return withAtomicFile(
    path,
    async (file) => {
      const { signal } = options;
      const sink = stopOnAbort(fileSink(file), signal);
      const reader = stream.getReader();
      // A pending read of a stalled stream ends only when it is cancelled.
      const cancel = () => reader.cancel(signal!.reason).catch(() => {});
      signal?.addEventListener("abort", cancel, { once: true });
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await sink.write(value);
        }
        await sink.flush();
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        throw error;
      } finally {
        signal?.removeEventListener("abort", cancel);
      }
    },
    () => stream.cancel(options.signal?.reason),
    options,
  );
}

/**
 * Runs `write` on a new temporary file beside `path`, then flushes it to
 * disk and renames it over `path`; on any error, or when `options.signal`
 * aborts, the temporary file is removed (an abort does not wait for `write`
 * to settle: a stalled source may never). Needs `node:fs`.
 *
 * @example
 * ```ts
 * import { withAtomicFile } from "./to_file.ts";
 * await withAtomicFile("out.bin", async (file) => {
 *   await file.write(new TextEncoder().encode("data"));
 * });
 * ```
 */
export async function withAtomicFile(
  path: string,
  write: (file: WritableFileHandle) => Promise<void>,
  unavailable?: () => Promise<void>,
  options: WriteFileOptions = {},
): Promise<void> {
  const { signal } = options;
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs || signal?.aborted) {
    await unavailable?.();
    signal?.throwIfAborted();
    throw new TypeError("Cannot write a file: this runtime has no node:fs");
  }
  await checkOutputPath(path);
  // The mode the file ends with: an existing file's (a private tarball
  // stays private), else a new file's (0666 less the umask). Until then the
  // temporary file is 0600, as the docker CLI's.
  const existing = await fs.stat(path).catch(() => undefined);
  const mode = existing
    ? existing.mode & 0o7777
    : 0o666 & ~((await umask()) ?? 0o022);
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await fs.open(temp, "wx", 0o600).catch((error) => {
    throw outputError(path, error);
  });
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  // The file system's errors (ENOSPC, EIO, …) are named by `path`; a
  // source's are passed on as they are.
  const named = <T>(step: Promise<T>) =>
    step.catch((error) => {
      throw outputError(path, error);
    });
  const handle: WritableFileHandle = {
    write: (...args) => named(file.write(...args)),
    truncate: (length) => named(file.truncate(length)),
  };
  try {
    const writing = write(handle);
    writing.catch(() => {}); // after an abort, nobody waits for it
    await Promise.race([writing, aborted]);
    await named(file.chmod(mode));
    // On disk before it takes the name: a crash after the rename must not
    // leave a named, partial tarball.
    await named(file.sync());
    await named(file.close());
    await named(fs.rename(temp, path));
  } catch (error) {
    await file.close().catch(() => {});
    await fs.rm(temp, { force: true });
    throw error;
  } finally {
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

// The process's umask, where the runtime tells it (Node, Deno, Bun).
async function umask(): Promise<number | undefined> {
  const process = await importNode<typeof import("node:process")>(
    "node:process",
  );
  try {
    return process?.umask();
  } catch {
    return undefined;
  }
}

// The sink, refusing every call once `signal` has aborted: the writer stops
// at its next chunk and cancels what it reads.
function stopOnAbort(sink: SeekableSink, signal?: AbortSignal): SeekableSink {
  if (!signal) return sink;
  return {
    write: async (bytes) => {
      signal.throwIfAborted();
      await sink.write(bytes);
    },
    writeAt: async (position, bytes) => {
      signal.throwIfAborted();
      await sink.writeAt(position, bytes);
    },
    truncate: async (length) => {
      signal.throwIfAborted();
      await sink.truncate(length);
    },
    flush: () => sink.flush(),
  };
}

/**
 * Saves `[tag, image]` pairs as a docker-save tarball at `path`. The file
 * appears only once the whole tarball is written and verified; a failure
 * leaves nothing at `path` (an existing file there is kept), and so does an
 * abort of `options.signal`. Since a file
 * can seek, each layer is read and decompressed once, even where its
 * uncompressed size is not known up front (the header is patched); the
 * bytes are those of `save()`.
 *
 * @example
 * ```ts
 * import { fromOciLayout, saveToFile } from "../../mod.ts";
 * await saveToFile("app.tar", [["app:v1", await fromOciLayout("./oci", "app")]]);
 * ```
 */
export async function saveToFile(
  path: string,
  entries: SaveEntries,
  options: SaveOptions & WriteFileOptions = {},
): Promise<void> {
  // Before anything is read: a directory or a device fails now, not after
  // the download.
  await checkOutputPath(path);
  const settings = resolveOptions(options);
  const plan = await planSave(entries, settings);
  await withAtomicFile(
    path,
    (file) =>
      writePlanSeekable(
        plan,
        settings,
        // Its chunks come from the plan alone: freed once written.
        stopOnAbort(fileSink(file, true), options.signal),
      ),
    undefined,
    options,
  );
}
