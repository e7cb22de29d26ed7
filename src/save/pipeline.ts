/**
 * Stages 1–3 of `save()` composed: `[tag, image]` pairs in, the tarball's
 * planned members out. Shared by `save()` and the sized plan behind
 * `saveSize()`/`saveResponse()`.
 *
 * @module
 */

import type { Image } from "../image.ts";
import { ConfigDigestStream } from "./config_digest.ts";
import type { PlannedEntry } from "./entries.ts";
import { type PlanOptions, PlanStream } from "./plan.ts";
import { type ConvertedImage, V1Stream } from "./v1.ts";

/**
 * The planned members of the tarball of `entries`, as a stream. Each image
 * is passed to `onImage` once converted (its digests, v1 ancestry).
 *
 * @example
 * ```ts
 * import { planStream } from "./pipeline.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const members = planStream([["app:v1", image]], { format: "docker" });
 * ```
 */
export function planStream(
  entries: Iterable<readonly [string, Image]>,
  options: PlanOptions,
  onImage?: (image: ConvertedImage) => void,
): ReadableStream<PlannedEntry> {
  let converted = iterableStream(entries)
    .pipeThrough(new ConfigDigestStream())
    .pipeThrough(new V1Stream());
  if (onImage) {
    converted = converted.pipeThrough(
      new TransformStream<ConvertedImage, ConvertedImage>({
        transform(image, controller) {
          onImage(image);
          controller.enqueue(image);
        },
      }),
    );
  }
  return converted.pipeThrough(new PlanStream(options));
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
