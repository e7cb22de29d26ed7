/**
 * A strong validator for the bytes of a save: a digest over the options that
 * shape them, the tags, each manifest and config digest, and the v1 json.
 * Options that change only what is displayed (progress) are left out, so
 * they never change it.
 *
 * @module
 */

import { sha256Hex } from "../model/digest.ts";
import type { SaveSettings } from "./options.ts";
import type { SaveItem } from "./v1.ts";

/**
 * The `ETag` (quoted) of the tarball of `images` saved with `options`.
 *
 * @example
 * ```ts
 * import { etagOf } from "./etag.ts";
 * import type { SaveItem } from "./v1.ts";
 * import { resolveOptions } from "./options.ts";
 * declare const images: SaveItem[];
 * const etag = await etagOf(images, resolveOptions({ format: "docker" }));
 * ```
 */
export async function etagOf(
  items: readonly SaveItem[],
  settings: Pick<SaveSettings, "format" | "compressed" | "defaultPlatform">,
): Promise<string> {
  const identity = JSON.stringify({
    v: 1,
    format: settings.format,
    layers: settings.compressed ? "compressed" : "uncompressed",
    // An index's digest covers every child's manifest, config and layers.
    ...(items.some((item) => item.kind === "index")
      ? { defaultPlatform: settings.defaultPlatform }
      : {}),
    images: await Promise.all(
      items.map(async (image) =>
        image.kind === "index" ? [image.tag, image.descriptor.digest] : [
          image.tag,
          await sha256Hex(image.rawManifest),
          image.configHex,
          image.topId,
          await sha256Hex(
            new TextEncoder().encode(JSON.stringify(
              image.ancestry.map((v1) => [
                v1.id,
                typeof v1.json === "string"
                  ? v1.json
                  : new TextDecoder().decode(v1.json),
              ]),
            )),
          ),
        ]
      ),
    ),
  });
  const hex = await sha256Hex(new TextEncoder().encode(identity));
  return `"${hex.slice(0, 40)}"`;
}
