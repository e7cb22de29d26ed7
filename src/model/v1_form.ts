/**
 * An image's existing v1 form: the v1 ids and v1 json a docker-save archive
 * already carries, which the docker writer keeps instead of converting again
 * (the reference's `tag_to_v1_image`). Only a docker archive image has one,
 * so it is not part of the general `Image`: {@linkcode hasV1Form} is the one
 * place that asks.
 *
 * @module
 */

import type { Descriptor, Image } from "./image.ts";

/**
 * An image's existing v1 form: what `repositories` names and the layer
 * directories written for it.
 */
export interface V1Form {
  /**
   * The top of the v1 ancestry, as `repositories` names it. It may be a
   * throwaway id that has no directory.
   */
  topId: string;
  /** The v1 layers that have a directory, newest (top) first. */
  layers: V1FormLayer[];
}

/** One directory of an existing v1 form. */
export interface V1FormLayer {
  /** The v1 id (64 hex). */
  id: string;
  /** The v1 json's exact bytes. */
  json: Uint8Array;
  /** The manifest layer whose content is this directory's `layer.tar`. */
  layer: Descriptor;
  /** That layer's diff_id. */
  diffId: string;
}

/** An image that may carry a v1 form (a docker archive image). */
export interface ImageWithV1Form extends Image {
  /** The v1 form the image carries; `undefined` means convert. */
  v1Form(): Promise<V1Form | undefined>;
}

/**
 * Whether an image can carry a v1 form.
 *
 * @example
 * ```ts
 * import { hasV1Form } from "./v1_form.ts";
 * import type { Image } from "./image.ts";
 * declare const image: Image;
 * const form = hasV1Form(image) ? await image.v1Form() : undefined;
 * ```
 */
export function hasV1Form(image: Image): image is ImageWithV1Form {
  return typeof (image as Partial<ImageWithV1Form>).v1Form === "function";
}
