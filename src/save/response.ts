/**
 * Serving tarballs the way static files are served: an exact length up
 * front, a strong `ETag`, and `Range` requests answered by opening only the
 * members a range touches. Possible because the output is deterministic
 * and, in `layers: "compressed"` mode or with sources that know their
 * uncompressed sizes, every member's size is known before the first byte.
 *
 * @module
 */

import type { SaveEntries, SaveOptions } from "./save.ts";
import { etagOf } from "./etag.ts";
import { resolveOptions } from "./options.ts";
import { planSave } from "./pipeline.ts";
import { tarRangeStream } from "./tar_range.ts";
import { tarSize } from "./tar_writer.ts";
import { sizePlan, writePlan } from "./write.ts";
import { withKnownLength } from "../runtime/fixed_length.ts";

/**
 * The exact byte length of `save(entries, options)`, when it can be known
 * without reading layer bodies (always with `layers: "compressed"`;
 * otherwise when every layer is a plain tar or its source knows its
 * uncompressed size); `undefined` otherwise.
 *
 * @example
 * ```ts
 * import { fromOciLayout, saveSize } from "../../mod.ts";
 * const image = await fromOciLayout("./oci", "app");
 * const length = await saveSize([["app:v1", image]], { layers: "compressed" });
 * ```
 */
export async function saveSize(
  entries: SaveEntries,
  options: SaveOptions = {},
): Promise<number | undefined> {
  const settings = resolveOptions(options);
  const members = await sizePlan(await planSave(entries, settings), settings);
  return members && tarSize(members);
}

/** A parsed single `Range: bytes=` request, inclusive end. */
export interface HttpRange {
  /** First byte. */
  start: number;
  /** Last byte (inclusive). */
  end: number;
}

/**
 * A `Response` carrying the tarball, that honours `Range` (one range → 206
 * with `Content-Range`; unsatisfiable → 416), `If-Range`, `If-None-Match`
 * and `HEAD`, with `Content-Length` and a strong `ETag` derived from the
 * inputs. When the length cannot be known up front (uncompressed gzip
 * layers of unknown size) it answers 200 with the whole tarball, without
 * `Accept-Ranges`. A whole-body answer is verified like `save()`; a partial
 * one cannot hash whole blobs and is not.
 *
 * @example An edge handler with resumable downloads
 * ```ts
 * import { fromOciLayout, saveResponse } from "../../mod.ts";
 * const image = await fromOciLayout("./oci", "app");
 * export default {
 *   fetch: (request: Request) =>
 *     saveResponse(request, [["app:v1", image]], { layers: "compressed" }),
 * };
 * ```
 */
export async function saveResponse(
  request: Request,
  entries: SaveEntries,
  options: SaveOptions = {},
): Promise<Response> {
  // Planned once: the sizes, the ETag and the body all read this plan.
  const settings = resolveOptions(options);
  const plan = await planSave(entries, settings);
  const members = await sizePlan(plan, settings);
  const etag = await etagOf(plan.images, settings);
  const total = members && tarSize(members);
  const headers = new Headers({
    "content-type": "application/x-tar",
    "etag": etag,
  });
  if (total !== undefined) headers.set("accept-ranges", "bytes");
  const head = request.method === "HEAD";
  if (matchesEtag(request.headers.get("if-none-match"), etag)) {
    return new Response(null, { status: 304, headers });
  }
  const ifRange = request.headers.get("if-range");
  const range = total !== undefined && (ifRange === null || ifRange === etag)
    ? parseRange(request.headers.get("range"), total)
    : undefined;
  if (range === "unsatisfiable") {
    headers.set("content-range", `bytes */${total}`);
    return new Response(null, { status: 416, headers });
  }
  if (range && members) {
    headers.set("content-range", `bytes ${range.start}-${range.end}/${total}`);
    headers.set("content-length", String(range.end - range.start + 1));
    return new Response(
      head ? null : withKnownLength(
        tarRangeStream(members, range.start, range.end + 1),
        range.end - range.start + 1,
      ),
      { status: 206, headers },
    );
  }
  if (total !== undefined) headers.set("content-length", String(total));
  const whole = head ? null : writePlan(() => Promise.resolve(plan), settings);
  const body = whole && total !== undefined
    ? withKnownLength(whole, total)
    : whole;
  return new Response(body, {
    status: 200,
    headers,
  });
}

/**
 * Parses a `Range` header against a length: one `bytes=` range (`a-b`,
 * `a-`, `-n`). No header, another unit or several ranges → `undefined`
 * (serve it whole, as RFC 9110 allows); a range starting past the end →
 * `"unsatisfiable"`.
 *
 * @example
 * ```ts
 * import { parseRange } from "./response.ts";
 * parseRange("bytes=-100", 1000); // { start: 900, end: 999 }
 * ```
 */
export function parseRange(
  header: string | null,
  total: number,
): HttpRange | "unsatisfiable" | undefined {
  const match = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, total - suffix), end: total - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === ""
    ? total - 1
    : Math.min(Number(match[2]), total - 1);
  if (start >= total) return "unsatisfiable";
  if (end < start) return undefined;
  return { start, end };
}

function matchesEtag(header: string | null, etag: string): boolean {
  if (header === null) return false;
  return header.trim() === "*" ||
    header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
