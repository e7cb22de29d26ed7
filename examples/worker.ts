/**
 * docker-save as a Cloudflare Workers module: `export default { fetch }`
 * answering `GET /save?image=REF[&layers=compressed]` with a streamed
 * `docker save` tarball from a registry, through `saveResponse()` (exact
 * length, `ETag`, `Range` and `If-Range` where the length is known up front:
 * always with `layers=compressed`). Routes, statuses and the built-in
 * images: `examples/_image.ts`; no OCI layouts, as a worker has no files.
 *
 * Bundle it as for any worker, then serve it with `workerd` and the config
 * `examples/workerd.capnp` (or `wrangler dev`), with `nodejs_compat` on:
 *
 * ```sh
 * npx esbuild examples/worker.ts --bundle --format=esm --platform=browser \
 *   --outfile=examples/worker.js
 * npx workerd serve examples/workerd.capnp
 * curl -o app.tar 'http://127.0.0.1:8080/save?image=127.0.0.1:5000/app:v1'
 * ```
 *
 * Any runtime can also call it directly, as the tests do:
 *
 * ```ts
 * import worker from "./worker.ts";
 * const response = await worker.fetch(new Request("http://x/save?tag=app:v1"));
 * ```
 *
 * @module
 */

import { handle } from "./_image.ts";

/** The worker's bindings: `REGISTRIES`, comma-separated, or `*`. */
export interface Env {
  /** Registries `?image=` may pull from; unset: none. */
  REGISTRIES?: string;
}

export default {
  /** Answers one request. */
  fetch(request: Request, env: Env = {}): Promise<Response> {
    const registries = env.REGISTRIES;
    return handle(request, {
      registries: registries === "*" ? "*" : registries?.split(","),
    });
  },
};
