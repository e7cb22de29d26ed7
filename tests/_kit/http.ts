/**
 * Loopback networking for the tests: an in-process HTTP server on
 * 127.0.0.1, a free port for a daemon, and waiting until a daemon answers.
 *
 * @module
 */

import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import {
  connect as connectNet,
  createServer as createNetServer,
} from "node:net";
import type { Cleanup } from "./cleanup.ts";
import { sleep } from "./time.ts";

/** A free TCP port on 127.0.0.1 (free when asked; the caller retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** An in-process HTTP server on 127.0.0.1, closed by `cleanup`. */
export async function listen(
  cleanup: Cleanup,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; host: string; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  cleanup.add(() =>
    new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    })
  );
  const { port } = server.address() as { port: number };
  const host = `127.0.0.1:${port}`;
  return { server, host, url: `http://${host}` };
}

/**
 * Whether a GET of `url` answers with one of `statuses` (every 25 ms, at
 * most `tries` times) before `exited`: a daemon's readiness.
 */
export async function waitAnswers(
  url: string,
  exited: Promise<void>,
  statuses: readonly number[] = [200],
  tries = 200,
): Promise<boolean> {
  let gone = false;
  exited.then(() => gone = true);
  for (let i = 0; i < tries && !gone; i++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (statuses.includes(response.status)) return true;
    } catch { /* not listening yet */ }
    await sleep(25);
  }
  return false;
}

/**
 * Whether 127.0.0.1:`port` takes connections before `exited` (a TLS
 * daemon's readiness: the test's fetch does not trust its CA).
 */
export async function waitListening(port: number, exited: Promise<void>) {
  let gone = false;
  exited.then(() => gone = true);
  for (let i = 0; i < 200 && !gone; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connectNet(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return true;
    await sleep(25);
  }
  return false;
}
