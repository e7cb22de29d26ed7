/**
 * `saveToFile()`: `save()` into a file that appears only when complete. The
 * tarball is written to a temporary file beside the target and renamed over
 * it at the end; on any error the temporary file is removed.
 *
 * @module
 */

import { importNode } from "./runtime/_import.ts";
import { save, type SaveEntries, type SaveOptions } from "./save.ts";

/**
 * Writes a stream to `path` atomically: a temporary file in the same folder,
 * renamed over `path` only after the last byte; removed on error. Needs
 * `node:fs` (Node, Deno, Bun).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./save_to_file.ts";
 * await writeFileAtomic("out.bin", new Blob(["data"]).stream());
 * ```
 */
export async function writeFileAtomic(
  path: string,
  stream: ReadableStream<Uint8Array>,
): Promise<void> {
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs) {
    await stream.cancel();
    throw new TypeError("Cannot write a file: this runtime has no node:fs");
  }
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await fs.open(temp, "wx");
  try {
    const reader = stream.getReader();
    const writeAll = async (chunk: Uint8Array) => {
      // write() may write less than asked; loop until the chunk is out.
      for (let offset = 0; offset < chunk.byteLength;) {
        const { bytesWritten } = await file.write(chunk, offset);
        offset += bytesWritten;
      }
    };
    try {
      // One write in flight while the next chunk is produced: the disk and
      // the pipeline overlap, and at most one chunk waits.
      let writing: Promise<void> = Promise.resolve();
      for (;;) {
        const { done, value } = await reader.read();
        await writing;
        if (done) break;
        writing = writeAll(value);
        writing.catch(() => {}); // awaited (and rethrown) on the next turn
      }
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      throw error;
    }
    await file.close();
    await fs.rename(temp, path);
  } catch (error) {
    await file.close().catch(() => {});
    await fs.rm(temp, { force: true });
    throw error;
  }
}

/**
 * Saves `[tag, image]` pairs as a docker-save tarball at `path`. The file
 * appears only once the whole tarball is written and verified; a failure
 * leaves nothing at `path` (an existing file there is kept).
 *
 * @example
 * ```ts
 * import { fromOciLayout, saveToFile } from "../mod.ts";
 * await saveToFile("app.tar", [["app:v1", await fromOciLayout("./oci", "app")]]);
 * ```
 */
export function saveToFile(
  path: string,
  entries: SaveEntries,
  options: SaveOptions = {},
): Promise<void> {
  return writeFileAtomic(path, save(entries, options));
}
