/**
 * docker-save behind `Deno.serve`: `GET /save?tag=app:v1` streams a
 * `docker save` tarball (routes: `examples/_image.ts`).
 *
 * ```sh
 * deno run -A examples/deno_server.ts          # http://127.0.0.1:8000/
 * curl -o sample.tar 'http://127.0.0.1:8000/save?tag=app:v1'
 * ```
 *
 * Environment: `PORT` (default 8000; 0 picks a free one), `OCI_ROOT` (folder
 * of OCI layouts `?oci=` may name), `REGISTRIES` (comma-separated registries
 * `?image=` may pull from, or `*`). It prints `Listening on http://HOST:PORT/`
 * once it accepts connections.
 *
 * @module
 */

import { handle, type HandlerOptions } from "./_image.ts";

const registries = Deno.env.get("REGISTRIES");
const options: HandlerOptions = {
  ociRoot: Deno.env.get("OCI_ROOT"),
  registries: registries === "*" ? "*" : registries?.split(","),
};

Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`Listening on http://${hostname}:${port}/`),
}, (request) => handle(request, options));
