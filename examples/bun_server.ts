/**
 * docker-save behind `Bun.serve`: `GET /save?tag=app:v1` streams a
 * `docker save` tarball (routes: `examples/_image.ts`).
 *
 * ```sh
 * bun examples/bun_server.ts                   # http://127.0.0.1:8000/
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

// The little of Bun's API used here, so the file type-checks without bun-types.
declare const Bun: {
  env: Record<string, string | undefined>;
  serve(options: {
    hostname: string;
    port: number;
    idleTimeout?: number;
    fetch(request: Request): Response | Promise<Response>;
  }): { hostname: string; port: number };
};

const registries = Bun.env.REGISTRIES;
const options: HandlerOptions = {
  ociRoot: Bun.env.OCI_ROOT,
  registries: registries === "*" ? "*" : registries?.split(","),
};

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(Bun.env.PORT ?? 8000),
  // Bun closes a connection idle for 10 s by default, and a client reading a
  // large tarball slowly looks idle while the response waits on the socket.
  idleTimeout: 0,
  fetch: (request) => handle(request, options),
});
console.log(`Listening on http://${server.hostname}:${server.port}/`);
