/**
 * The command's progress on stderr: the one place that wires `save()`'s
 * `onProgress` observer to the progress view (`cli_progress.ts`).
 *
 * @module
 */

import process from "node:process";
import { Progress } from "./progress_view.ts";
import type { Image } from "../model/image.ts";
import type { ImageIndex } from "../model/image_index.ts";
import type { ProgressListener } from "../save/progress.ts";
import { untrustedText } from "../util/untrusted_text.ts";

/**
 * What the command asks of its progress view.
 *
 * @example
 * ```ts
 * import { type ProgressView, stderrProgress } from "./stderr_progress.ts";
 * const view: ProgressView = stderrProgress();
 * ```
 */
export interface ProgressView {
  /** Registers an image's layers ahead of the save, named by its tag. */
  expect(image: Image | ImageIndex, tag: string): Promise<void>;
  /** The `onProgress` option of `save()`. */
  listener: ProgressListener;
  /** Prints what is still pending; called once, on success or error. */
  finish(): void;
}

/**
 * Progress on stderr: a live view on a terminal, else one line per layer.
 *
 * @example
 * ```ts
 * import { stderrProgress } from "./stderr_progress.ts";
 * import { save } from "../save/save.ts";
 * import type { Image } from "../model/image.ts";
 * declare const image: Image;
 * const progress = stderrProgress();
 * await progress.expect(image, "app:v1");
 * save([["app:v1", image]], { onProgress: progress.listener });
 * ```
 */
export function stderrProgress(): ProgressView {
  const progress = new Progress({
    write: (text) => process.stderr.write(text),
    tty: process.stderr.isTTY === true,
    columns: () => process.stderr.columns || 80,
  });
  return {
    // The tag may come from an archive; digests are checked sha256 hex.
    expect: (image, tag) =>
      progress.expect(image, untrustedText(tag, Infinity)),
    listener: progress.listener,
    finish: () => progress.finish(),
  };
}
