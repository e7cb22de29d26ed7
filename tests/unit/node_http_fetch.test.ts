/**
 * The `fetch` over `node:http` that Node's registry requests go through
 * (src/runtime/node_http_fetch.ts), against a real `node:http` server: the
 * body is read from the socket only as it is asked for (bounded read-ahead),
 * cancelling or aborting closes the connection, a finished one is reused,
 * redirects are returned as they are, and failures look like `fetch`'s.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { createServer as createNetServer, type Socket } from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";
import { nodeHttpFetch } from "../../src/runtime/node_http_fetch.ts";
import {
  collectDroppedBuffers,
  freesAtOnce,
} from "../../src/runtime/chunk_release.ts";
import { httpClientKind } from "../../src/runtime/http_client.ts";
import { classifyNetworkError } from "../../src/sources/registry/network_error.ts";
import { Cleanup } from "../_kit/cleanup.ts";
import { collectionsAsked } from "../_kit/gc.ts";
import { freePort, listen } from "../_kit/http.ts";
import { sleep } from "../_kit/time.ts";

const MiB = 1024 * 1024;

/** A server whose handler sees each request's socket and its number. */
async function server(
  cleanup: Cleanup,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
) {
  const sockets: Socket[] = [];
  const served = await listen(cleanup, handler);
  served.server.on("connection", (socket: Socket) => sockets.push(socket));
  return { ...served, sockets };
}

/** Ends when `socket` is closed, or rejects after `ms`. */
function closed(socket: Socket, ms = 5000): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("socket left open")), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Writes `total` bytes in 64 KiB writes as fast as the client takes them. */
function stream(res: ServerResponse, total: number, sent: { bytes: number }) {
  const block = new Uint8Array(64 * 1024).fill(7);
  res.writeHead(200, { "content-length": String(total) });
  const more = () => {
    while (sent.bytes < total && !res.destroyed) {
      const part = block.subarray(
        0,
        Math.min(block.byteLength, total - sent.bytes),
      );
      sent.bytes += part.byteLength;
      if (!res.write(part)) return void res.once("drain", more);
    }
    if (!res.destroyed) res.end();
  };
  more();
}

async function onNode(): Promise<boolean> {
  return await httpClientKind() === "node";
}

test("httpClientKind() is node on Node only: Deno and Bun keep their own fetch", async () => {
  const runtime = globalThis as { Deno?: unknown; Bun?: unknown };
  const expected = runtime.Deno ? "deno" : runtime.Bun ? "bun" : "node";
  assert.equal(await httpClientKind(), expected);
});

test("nodeHttpFetch() reads a body from the socket only as it is asked for", async () => {
  const cleanup = new Cleanup();
  try {
    const total = 128 * MiB;
    const sent = { bytes: 0 };
    const { url } = await server(
      cleanup,
      (_req, res) => stream(res, total, sent),
    );
    const send = (await nodeHttpFetch({}))!;
    const response = await send(`${url}/blob`);
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.ok(first.value!.byteLength > 0);
    // Nobody reads for a while: the server can send only what the sockets'
    // and Node's buffers hold, not the body (an unbounded reader takes it all).
    await sleep(1000);
    const ahead = sent.bytes;
    if (await onNode()) {
      assert.ok(
        ahead < 32 * MiB,
        `${ahead} bytes sent before they were asked for`,
      );
    }
    let received = first.value!.byteLength;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      assert.ok(value instanceof Uint8Array);
      received += value.byteLength;
    }
    assert.equal(received, total);
  } finally {
    await cleanup.close();
  }
});

/** A 64 MiB body being read: one chunk taken, then left to the test. */
async function openBlob(cleanup: Cleanup, signal?: AbortSignal) {
  const sent = { bytes: 0 };
  const { url, sockets } = await server(
    cleanup,
    (_req, res) => stream(res, 64 * MiB, sent),
  );
  const send = (await nodeHttpFetch({}))!;
  const response = await send(`${url}/blob`, { signal });
  const reader = response.body!.getReader();
  await reader.read();
  return { reader, socket: sockets[0], sent };
}

test("nodeHttpFetch() closes the connection when the body is cancelled", async () => {
  const cleanup = new Cleanup();
  try {
    const { reader, socket, sent } = await openBlob(cleanup);
    await reader.cancel();
    await closed(socket);
    assert.ok(sent.bytes < 64 * MiB);
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() fails the body with the abort reason and closes the connection", async () => {
  const cleanup = new Cleanup();
  try {
    const controller = new AbortController();
    const { reader, socket } = await openBlob(cleanup, controller.signal);
    const reason = new Error("timed out");
    controller.abort(reason);
    await assert.rejects(
      (async () => {
        for (;;) if ((await reader.read()).done) return;
      })(),
      (error) => error === reason,
    );
    await closed(socket);
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() rejects with the abort reason while waiting for headers", async () => {
  const cleanup = new Cleanup();
  try {
    const { url, sockets } = await server(cleanup, () => {/* never answers */});
    const send = (await nodeHttpFetch({}))!;
    const controller = new AbortController();
    const reason = new Error("timed out");
    setTimeout(() => controller.abort(reason), 200);
    await assert.rejects(
      send(`${url}/v2/`, { signal: controller.signal }),
      (error) => error === reason,
    );
    await closed(sockets[0]);
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() aborted on a pooled connection before its answer rejects once, with nothing left unhandled", async () => {
  if (!(await onNode())) return; // Deno's and Bun's node:http pool their own way
  const cleanup = new Cleanup();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  cleanup.add(() => void process.off("unhandledRejection", onUnhandled));
  try {
    // The second request goes over the first one's pooled connection and is
    // never answered; aborting it resets that reused socket (ECONNRESET),
    // which must not be taken for a stale pooled connection and sent again.
    const { url, sockets } = await server(cleanup, (req, res) => {
      if (req.url === "/a") res.end("ok");
    });
    const send = (await nodeHttpFetch({}))!;
    assert.equal(await (await send(`${url}/a`)).text(), "ok");
    const controller = new AbortController();
    const reason = new Error("blob failed its digest");
    setTimeout(() => controller.abort(reason), 200);
    await assert.rejects(
      send(`${url}/b`, { signal: controller.signal }),
      (error) => error === reason,
    );
    await sleep(200);
    assert.equal(sockets.length, 1);
    assert.deepEqual(unhandled, []);
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() reuses a connection whose body was read, not one cancelled", async () => {
  const cleanup = new Cleanup();
  try {
    const { url, sockets } = await server(cleanup, (req, res) => {
      if (req.url === "/big") return stream(res, 16 * MiB, { bytes: 0 });
      res.end("ok");
    });
    const send = (await nodeHttpFetch({}))!;
    assert.equal(await (await send(`${url}/a`)).text(), "ok");
    assert.equal(await (await send(`${url}/b`)).text(), "ok");
    assert.equal(sockets.length, 1);
    const big = await send(`${url}/big`);
    await big.body!.cancel();
    assert.equal(await (await send(`${url}/c`)).text(), "ok");
    assert.equal(sockets.length, 2);
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() sends a request again on a fresh connection when the server closed the pooled one", async () => {
  if (!(await onNode())) return; // Deno's and Bun's node:http pool their own way
  const cleanup = new Cleanup();
  try {
    // Each connection answers its first request and drops the next one
    // unanswered, as a server does that closed it while it sat idle.
    const connections: Socket[] = [];
    const raw = createNetServer((socket) => {
      connections.push(socket);
      let requests = 0;
      socket.on("data", () => {
        if (++requests > 1) return void socket.destroy();
        socket.write(
          "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok",
        );
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
    cleanup.add(() => {
      for (const socket of connections) socket.destroy();
      return new Promise<void>((resolve) => raw.close(() => resolve()));
    });
    const { port } = raw.address() as { port: number };
    const send = (await nodeHttpFetch({}))!;
    assert.equal(await (await send(`http://127.0.0.1:${port}/a`)).text(), "ok");
    assert.equal(await (await send(`http://127.0.0.1:${port}/b`)).text(), "ok");
    assert.equal(connections.length, 2);
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() returns a redirect as it is, with its Location", async () => {
  const cleanup = new Cleanup();
  try {
    const { url } = await server(cleanup, (_req, res) => {
      res.writeHead(307, { location: "https://cdn.example/blob" }).end();
    });
    const send = (await nodeHttpFetch({}))!;
    const response = await send(`${url}/v2/x/blobs/sha256:0`);
    assert.equal(response.status, 307);
    assert.equal(response.headers.get("location"), "https://cdn.example/blob");
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() sends headers and a form body as fetch does", async () => {
  const cleanup = new Cleanup();
  try {
    let seen: {
      method?: string;
      headers?: IncomingMessage["headers"];
      body?: string;
    } = {};
    const { url } = await server(cleanup, (req, res) => {
      let body = "";
      req.on("data", (chunk) => body += chunk);
      req.on("end", () => {
        seen = { method: req.method, headers: req.headers, body };
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"token":"t"}');
      });
    });
    const send = (await nodeHttpFetch({}))!;
    const response = await send(new URL(`${url}/token`), {
      method: "POST",
      headers: { authorization: "Basic eDp5" },
      body: new URLSearchParams({ grant_type: "password", scope: "a b" }),
    });
    assert.deepEqual(await response.json(), { token: "t" });
    assert.equal(seen.method, "POST");
    assert.equal(seen.headers?.authorization, "Basic eDp5");
    assert.match(
      seen.headers?.["content-type"] ?? "",
      /^application\/x-www-form-urlencoded/,
    );
    assert.equal(seen.body, "grant_type=password&scope=a+b");
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() fails a body the server cuts short", async () => {
  const cleanup = new Cleanup();
  try {
    const { url } = await server(cleanup, (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write(new Uint8Array(50));
      setTimeout(() => res.destroy(), 50);
    });
    const send = (await nodeHttpFetch({}))!;
    const response = await send(`${url}/blob`);
    await assert.rejects(response.arrayBuffer());
  } finally {
    await cleanup.close();
  }
});

test("nodeHttpFetch() rejects a refused connection as fetch does (ECONNREFUSED)", async () => {
  const send = (await nodeHttpFetch({}))!;
  const port = await freePort();
  const error = await send(`http://127.0.0.1:${port}/v2/`).then(
    () => undefined,
    (error) => error,
  );
  assert.ok(error instanceof TypeError);
  assert.equal(classifyNetworkError(error).kind, "refused");
});

test("nodeHttpFetch() asks V8 for a collection every 2 MiB of body, where buffers cannot be freed at once and gc is exposed", async () => {
  const cleanup = new Cleanup();
  try {
    const sent = { bytes: 0 };
    const { url } = await server(
      cleanup,
      (_req, res) => stream(res, 8 * MiB, sent),
    );
    const send = (await nodeHttpFetch({}))!;
    collectDroppedBuffers(true);
    cleanup.add(() => collectDroppedBuffers(false));
    // 8 MiB read: four collections (one full), whatever was counted before.
    const types = await collectionsAsked(async () => {
      const body = await (await send(`${url}/blob`)).arrayBuffer();
      assert.equal(body.byteLength, 8 * MiB);
    });
    assert.deepEqual(
      types,
      freesAtOnce ? [] : ["major", "minor", "minor", "minor"],
    );
  } finally {
    await cleanup.close();
  }
});
