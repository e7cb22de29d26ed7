/**
 * The command's progress on stderr: the one place that wires `save()`'s
 * `onProgress` observer to the progress view (`cli_progress.ts`).
 *
 * @module
 */

import process from "node:process";
import { clearInterval, setInterval } from "node:timers";
import { Progress, type ProgressOutcome } from "./progress_view.ts";
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
 * const view: ProgressView = stderrProgress({ asStored: false });
 * ```
 */
export interface ProgressView {
  /** Registers an image's layers ahead of the save, named by its tag. */
  expect(image: Image | ImageIndex, tag: string): Promise<void>;
  /** The `onProgress` option of `save()`. */
  listener: ProgressListener;
  /**
   * Prints a line of its own (a retry notice) above the live view, so it
   * never lands inside a frame.
   */
  note(line: string): void;
  /**
   * Draws the last frame, saying how the save ended; called once, on
   * success, error or interrupt.
   */
  finish(outcome: ProgressOutcome): void;
}

/**
 * Progress on stderr: a live view on a terminal, else one line per layer.
 * `asStored`: each layer member is its blob (compressed layers, the OCI
 * format), which sizes the total.
 *
 * @example
 * ```ts
 * import { stderrProgress } from "./stderr_progress.ts";
 * import { save } from "../save/save.ts";
 * import type { Image } from "../model/image.ts";
 * declare const image: Image;
 * const progress = stderrProgress({ asStored: true });
 * await progress.expect(image, "app:v1");
 * save([["app:v1", image]], { onProgress: progress.listener });
 * ```
 */
export function stderrProgress(
  options: { asStored: boolean },
): ProgressView {
  const progress = new Progress({
    write: (text) => process.stderr.write(text),
    tty: process.stderr.isTTY === true,
    asStored: options.asStored,
    columns: () => process.stderr.columns || 80,
  });
  // Redrawn every second even when no byte comes (a stalled download);
  // the timer never keeps the process alive.
  const timer = progressTimer(() => progress.tick());
  return {
    // The tag may come from an archive; digests are checked sha256 hex.
    expect: (image, tag) =>
      progress.expect(image, untrustedText(tag, Infinity)),
    listener: progress.listener,
    note: (line) => progress.note(line),
    finish: (outcome) => {
      clearInterval(timer);
      progress.finish(outcome);
    },
  };
}

function progressTimer(tick: () => void): ReturnType<typeof setInterval> {
  return setInterval(tick, 1000).unref();
}
