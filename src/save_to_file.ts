/**
 * `saveToFile()`: `save()` into a file that appears only when complete. The
 * tarball is written to a temporary file beside the target and renamed over
 * it at the end; on any error the temporary file is removed.
 *
 * @module
 */

import { importNode } from "./runtime/_import.ts";
import { fileSink, type WritableFileHandle } from "./runtime/file_sink.ts";
import type { SaveEntries, SaveOptions } from "./save.ts";
import { planSave } from "./save/pipeline.ts";
import { writePlanSeekable } from "./save/write.ts";

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
export function writeFileAtomic(
  path: string,
  stream: ReadableStream<Uint8Array>,
): Promise<void> {
  return withAtomicFile(path, async (file) => {
    const sink = fileSink(file);
    const reader = stream.getReader();
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
    }
  }, () => stream.cancel());
}

/**
 * Runs `write` on a new temporary file beside `path`, then renames it over
 * `path`; on any error the temporary file is removed. Needs `node:fs`.
 *
 * @example
 * ```ts
 * import { withAtomicFile } from "./save_to_file.ts";
 * await withAtomicFile("out.bin", async (file) => {
 *   await file.write(new TextEncoder().encode("data"));
 * });
 * ```
 */
export async function withAtomicFile(
  path: string,
  write: (file: WritableFileHandle) => Promise<void>,
  unavailable?: () => Promise<void>,
): Promise<void> {
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs) {
    await unavailable?.();
    throw new TypeError("Cannot write a file: this runtime has no node:fs");
  }
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await fs.open(temp, "wx");
  try {
    await write(file);
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
 * leaves nothing at `path` (an existing file there is kept). Since a file
 * can seek, each layer is read and decompressed once, even where its
 * uncompressed size is not known up front (the header is patched); the
 * bytes are those of `save()`.
 *
 * @example
 * ```ts
 * import { fromOciLayout, saveToFile } from "../mod.ts";
 * await saveToFile("app.tar", [["app:v1", await fromOciLayout("./oci", "app")]]);
 * ```
 */
export async function saveToFile(
  path: string,
  entries: SaveEntries,
  options: SaveOptions = {},
): Promise<void> {
  const plan = await planSave(entries, options);
  await withAtomicFile(
    path,
    (file) => writePlanSeekable(plan, options, fileSink(file)),
  );
}
