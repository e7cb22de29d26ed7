/**
 * Stages 1–3 of `save()` composed: `[tag, image]` pairs in, the tarball's
 * planned members out, made once and read by both the full stream and the
 * sized plan behind `saveSize()`/`saveResponse()`.
 *
 * @module
 */

import type { Image } from "../model/image.ts";
import type { ImageIndex } from "../model/image_index.ts";
import { ConfigDigestStream } from "./config_digest.ts";
import type { PlannedEntry } from "./entries.ts";
import type { SaveSettings } from "./options.ts";
import { PlanStream } from "./plan.ts";
import type { SaveItem } from "./v1.ts";
import { V1Stream } from "./v1.ts";

/** A save, planned: every member in order, and the images behind them. */
export interface SavePlan {
  /** The tarball's members, in order, layers still to be opened. */
  entries: PlannedEntry[];
  /**
   * Each image or index once converted (digests, v1 ancestry), in input
   * order.
   */
  images: SaveItem[];
}

/**
 * Plans the tarball of `entries`: reads each manifest and config, converts,
 * and lays out the members. No layer body is read.
 *
 * @example
 * ```ts
 * import { planSave } from "./pipeline.ts";
 * import type { Image } from "../model/image.ts";
 * declare const image: Image;
 * import { resolveOptions } from "./options.ts";
 * const settings = resolveOptions({ format: "docker" });
 * const { entries } = await planSave([["app:v1", image]], settings);
 * ```
 */
export async function planSave(
  entries: Iterable<readonly [string, Image | ImageIndex]>,
  settings: SaveSettings,
): Promise<SavePlan> {
  const plan: SavePlan = { entries: [], images: [] };
  await iterableStream(entries)
    .pipeThrough(new ConfigDigestStream())
    .pipeThrough(new V1Stream())
    .pipeThrough(
      new TransformStream<SaveItem, SaveItem>({
        transform(image, controller) {
          plan.images.push(image);
          controller.enqueue(image);
        },
      }),
    )
    .pipeThrough(new PlanStream(settings))
    .pipeTo(
      new WritableStream({ write: (entry) => void plan.entries.push(entry) }),
    );
  return plan;
}

function iterableStream<T>(items: Iterable<T>): ReadableStream<T> {
  let iterator: Iterator<T>;
  return new ReadableStream<T>({
    start() {
      iterator = items[Symbol.iterator]();
    },
    pull(controller) {
      const { done, value } = iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel() {
      iterator.return?.();
    },
  }, { highWaterMark: 0 });
}
