/**
 * A `fetch` over `node:http` / `node:https`, for Node: the registry's
 * requests are plain GETs and form POSTs with redirects handled by the
 * transport, so the little of `fetch` they use is made here with Node's own
 * client, which holds less memory per body than Node 20's `fetch` (undici):
 * draining one 25 MB blob peaked at 73 MiB against 93–100 MiB.
 *
 * The body is a web `ReadableStream` that pulls from the socket on demand:
 * the response is paused whenever the stream's reader has no read waiting,
 * so what is read ahead is bounded by Node's own socket and parser buffers
 * (tens of KiB), never an unbounded queue. Cancelling the body, or aborting
 * the request's signal, destroys the socket; a finished body returns it to
 * the agent's bounded keep-alive pool. Redirects are returned as they are
 * (`redirect: "manual"`); failures reject with `TypeError("fetch failed")`
 * whose `cause` is Node's error, as Node's `fetch` does, so the same
 * error mapping applies.
 *
 * @module
 */

import { importNode } from "./_import.ts";
import { countGarbage } from "./chunk_release.ts";

/**
 * TLS material for the `https:` requests of one `nodeHttpFetch`.
 *
 * @example
 * ```ts
 * import type { NodeHttpFetchOptions } from "./node_http_fetch.ts";
 * const options: NodeHttpFetchOptions = { ca: ["-----BEGIN CERTIFICATE-----\n…"] };
 * ```
 */
export interface NodeHttpFetchOptions {
  /** PEM CAs that replace Node's roots (as `node:tls`'s `ca` does). */
  ca?: readonly string[];
  /** A PEM client certificate, presented with `key`. */
  cert?: string;
  /** The client certificate's PEM private key. */
  key?: string;
}

// Idle keep-alive connections kept per host, and for how long: enough for
// the layers fetched side by side, few enough to hold no memory to speak of.
const FREE_SOCKETS = 4;
const IDLE_MS = 30_000;
// Responses that have no body, whatever the server sends.
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];

type Http = typeof import("node:http");
type IncomingMessage = import("node:http").IncomingMessage;
type ClientRequest = import("node:http").ClientRequest;

/**
 * A `fetch` made with `node:http` and `node:https` and its own bounded
 * keep-alive agents, or `undefined` where the runtime has no `node:http`.
 *
 * @example Fetch a blob with Node's own client
 * ```ts
 * import { nodeHttpFetch } from "./node_http_fetch.ts";
 * const fetchBlob = await nodeHttpFetch({});
 * const response = await fetchBlob!("http://127.0.0.1:5000/v2/");
 * await response.body?.cancel();
 * ```
 */
export async function nodeHttpFetch(
  options: NodeHttpFetchOptions,
): Promise<typeof fetch | undefined> {
  const http = await importNode<Http>("node:http");
  const https = await importNode<typeof import("node:https")>("node:https");
  if (!http?.Agent || !https?.Agent) return undefined;
  // `timeout` closes idle pooled connections only: a busy one's timeout is
  // the transport's (its deadlines abort the request).
  const pool = {
    keepAlive: true,
    maxFreeSockets: FREE_SOCKETS,
    timeout: IDLE_MS,
    scheduling: "lifo" as const,
  };
  const agents = {
    "http:": new http.Agent(pool),
    "https:": new https.Agent({
      ...pool,
      ca: options.ca ? [...options.ca] : undefined,
      cert: options.cert,
      key: options.key,
    }),
  };
  const send = { "http:": http.request, "https:": https.request };
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request ? request.url : String(input));
    const method = (init?.method ?? request?.method ?? "GET").toUpperCase();
    const headers = new Headers(init?.headers ?? request?.headers);
    const body = await requestBody(init?.body, headers);
    const signal = init?.signal ?? request?.signal ?? undefined;
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError("fetch failed", {
        cause: new Error(`unsupported protocol ${url.protocol}`),
      });
    }
    // What Node's fetch sends unless told otherwise (no Accept-Encoding:
    // bodies come as stored, as blobs must).
    if (!headers.has("accept")) headers.set("accept", "*/*");
    if (!headers.has("user-agent")) headers.set("user-agent", "node");
    const outgoing: Record<string, string> = {};
    headers.forEach((value, name) => outgoing[name] = value);
    if (body) outgoing["content-length"] = String(body.byteLength);
    const exchange = {
      url,
      method,
      headers: outgoing,
      body,
      agent: agents[url.protocol],
      request: send[url.protocol],
    };
    return await exchangeOnce(exchange, signal, true);
  };
}

interface Exchange {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  agent: import("node:http").Agent;
  request: Http["request"];
}

// One request; a connection the server closed while it sat in the pool
// (a reset before any answer on a reused socket) is tried once more on a
// fresh one, as Node's documentation advises.
function exchangeOnce(
  exchange: Exchange,
  signal: AbortSignal | undefined,
  mayRetry: boolean,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const req: ClientRequest = exchange.request(exchange.url, {
      method: exchange.method,
      headers: exchange.headers,
      agent: exchange.agent,
    });
    let response: IncomingMessage | undefined;
    let fail: ((error: unknown) => void) | undefined; // the body's, once open
    const onAbort = () => {
      const reason = signal!.reason;
      req.destroy();
      response?.destroy();
      if (fail) fail(reason);
      else reject(reason);
    };
    const forget = () => signal?.removeEventListener("abort", onAbort);
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (error: Error & { code?: unknown }) => {
      if (fail) return fail(new TypeError("terminated", { cause: error }));
      // Aborted: already rejected with the reason. The reset that follows
      // is our own, not a stale pooled connection to send the request again
      // on (that retry would reject unseen with the reason: unhandled).
      if (signal?.aborted) return;
      forget();
      if (mayRetry && req.reusedSocket && error.code === "ECONNRESET") {
        return resolve(exchangeOnce(exchange, signal, false));
      }
      reject(new TypeError("fetch failed", { cause: error }));
    });
    req.on("response", (res: IncomingMessage) => {
      response = res;
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 599) {
        forget();
        req.destroy();
        return reject(
          new TypeError("fetch failed", {
            cause: new Error(`invalid status ${status}`),
          }),
        );
      }
      const headers = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        try {
          headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        } catch { /* a header fetch would refuse: dropped */ }
      }
      let body: ReadableStream<Uint8Array> | null = null;
      if (exchange.method === "HEAD" || NULL_BODY_STATUSES.includes(status)) {
        forget();
        res.resume();
      } else {
        const opened = bodyOf(res, forget);
        body = opened.stream;
        fail = opened.fail;
      }
      const init = { status, headers };
      let made: Response;
      try {
        made = new Response(body, { ...init, statusText: res.statusMessage });
      } catch {
        made = new Response(body, init); // a reason phrase fetch refuses
      }
      resolve(made);
    });
    req.end(exchange.body);
  });
}

// The response's bytes as a web stream read on demand: resumed when the
// reader asks, paused as soon as no read waits.
function bodyOf(
  res: IncomingMessage,
  done: () => void,
): { stream: ReadableStream<Uint8Array>; fail: (error: unknown) => void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let settled = false;
  const fail = (error: unknown) => {
    if (settled) return;
    settled = true;
    done();
    res.destroy();
    controller.error(error);
  };
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      res.on("data", (chunk: Uint8Array) => {
        if (settled) return;
        // Node's fresh buffer per socket read, copied and dropped downstream.
        countGarbage(chunk.byteLength);
        // A plain view: a Buffer's `slice` shares memory, Uint8Array's copies.
        controller.enqueue(
          new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
        );
        if ((controller.desiredSize ?? 0) <= 0) res.pause();
      });
      res.pause();
      res.on("end", () => {
        if (settled) return;
        settled = true;
        done();
        controller.close();
      });
      res.on(
        "error",
        (error) => fail(new TypeError("terminated", { cause: error })),
      );
      res.on("close", () => {
        if (!res.complete) {
          fail(
            new TypeError("terminated", {
              cause: Object.assign(new Error("other side closed"), {
                code: "ECONNRESET",
              }),
            }),
          );
        }
      });
    },
    pull() {
      res.resume();
    },
    cancel() {
      settled = true;
      done();
      res.destroy();
    },
  }, { highWaterMark: 0 });
  return { stream, fail };
}

// What `fetch` would send for the bodies the registry code sends: none,
// a form (with its content type), text or bytes.
async function requestBody(
  body: BodyInit | null | undefined,
  headers: Headers,
): Promise<Uint8Array | undefined> {
  if (body === undefined || body === null) return undefined;
  if (body instanceof URLSearchParams) {
    if (!headers.has("content-type")) {
      headers.set(
        "content-type",
        "application/x-www-form-urlencoded;charset=UTF-8",
      );
    }
    return new TextEncoder().encode(body.toString());
  }
  if (typeof body === "string") {
    if (!headers.has("content-type")) {
      headers.set("content-type", "text/plain;charset=UTF-8");
    }
    return new TextEncoder().encode(body);
  }
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  // Anything else (a Blob, FormData, a stream) the way fetch reads it.
  const read = new Response(body);
  const type = read.headers.get("content-type");
  if (type && !headers.has("content-type")) headers.set("content-type", type);
  return new Uint8Array(await read.arrayBuffer());
}
