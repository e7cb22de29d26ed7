/**
 * A worker that reports what the edge path chose in the runtime it runs in
 * (tests/integration/workerd.test.ts bundles it like the example): the sha256 backend,
 * whether `DecompressionStream` reads every gzip member, and the gunzip of a
 * multi-member gzip sent as the request body, with its sha256.
 *
 * @module
 */

import {
  createGunzip,
  readsEveryGzipMember,
} from "../../src/runtime/decompress.ts";
import { createSha256 } from "../../src/runtime/hash.ts";

/** What the probe answers. */
export interface ProbeReport {
  /** `createSha256()`'s backend. */
  hash: string;
  /** `readsEveryGzipMember()`. */
  everyMember: boolean;
  /** Bytes the gunzip of the body gave. */
  size: number;
  /** Their sha256 (hex), by the chosen backend. */
  sha256: string;
}

export default {
  /** Gunzips and hashes the POSTed body; a GET answers 200. */
  async fetch(request: Request): Promise<Response> {
    if (!request.body) return new Response("POST a gzip\n"); // readiness
    const hash = await createSha256();
    const reader = request.body!.pipeThrough(await createGunzip()).getReader();
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      await hash.update(value);
    }
    const report: ProbeReport = {
      hash: hash.backend,
      everyMember: await readsEveryGzipMember(),
      size,
      sha256: await hash.hexDigest(),
    };
    return Response.json(report);
  },
};
