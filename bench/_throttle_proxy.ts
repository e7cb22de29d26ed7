/**
 * A reverse proxy on loopback that caps each connection's download rate, as
 * registries and CDNs do: every response body sent over one TCP connection
 * is paced to `RATE` bytes/s (a token bucket per socket, bursts of at most
 * one 64 KiB slice), so N connections get N × RATE. Requests and their
 * headers (Range, Accept, Authorization) go to the upstream unchanged.
 *
 * Run as its own process (the bench's timed commands block its event loop):
 *
 * ```sh
 * node --import tsx bench/_throttle_proxy.ts http://127.0.0.1:5000 24000000
 * # prints "listening 127.0.0.1:PORT" once it accepts connections
 * ```
 *
 * @module
 */

import { createServer, request, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import process from "node:process";

const SLICE = 64 * 1024;

/** When each connection may send its next byte (ms, performance.now()). */
const nextSend = new WeakMap<Socket, number>();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Sends `chunk` over `res`, paced to `rate` bytes/s for its socket.
async function paced(
  res: ServerResponse,
  socket: Socket,
  chunk: Buffer,
  rate: number,
): Promise<void> {
  for (let at = 0; at < chunk.length; at += SLICE) {
    const slice = chunk.subarray(at, at + SLICE);
    const now = performance.now();
    const due = Math.max(nextSend.get(socket) ?? now, now);
    if (due - now >= 1) await sleep(due - now);
    nextSend.set(
      socket,
      Math.max(due, performance.now()) + slice.length / rate * 1000,
    );
    if (!res.write(slice)) {
      await new Promise<void>((resolve) => res.once("drain", resolve));
    }
  }
}

/**
 * Starts the proxy in front of `upstream` (an http:// URL), each connection
 * capped at `rate` bytes/s; resolves with its `host:port`.
 */
export function startThrottleProxy(
  upstream: string,
  rate: number,
): Promise<string> {
  const target = new URL(upstream);
  const server = createServer((req, res) => {
    const socket = req.socket;
    const forward = request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host },
    }, async (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      try {
        for await (const chunk of upstreamRes) {
          await paced(res, socket, chunk as Buffer, rate);
        }
        res.end();
      } catch {
        res.destroy();
      }
    });
    forward.on("error", () => res.destroy());
    res.on("close", () => forward.destroy());
    req.pipe(forward);
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(
        `127.0.0.1:${typeof address === "object" && address?.port}`,
      );
    });
  });
}

if (import.meta.main ?? process.argv[1]?.endsWith("_throttle_proxy.ts")) {
  const [upstream, rateText] = process.argv.slice(2);
  const rate = Number(rateText);
  if (!upstream || !(rate > 0)) {
    console.error("usage: _throttle_proxy.ts UPSTREAM_URL BYTES_PER_SECOND");
    process.exit(2);
  }
  const host = await startThrottleProxy(upstream, rate);
  console.log(`listening ${host}`);
}
