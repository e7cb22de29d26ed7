/**
 * docker-save as a Cloudflare Workers-style module: `export default { fetch }`
 * answering `GET /save?tag=app:v1` with a streamed `docker save` tarball
 * (routes: `examples/_image.ts`; no OCI layouts, as a worker has no files).
 *
 * ```sh
 * npx wrangler dev examples/worker.ts          # Cloudflare's local runtime
 * ```
 *
 * Any runtime can call it directly, as the tests do:
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
