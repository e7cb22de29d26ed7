/**
 * The example servers, for real: `examples/deno_server.ts` and
 * `examples/bun_server.ts` run as child processes on 127.0.0.1 (port 0, the
 * port read from their "Listening on" line, stopped by PID), and are asked
 * over plain HTTP. A download must equal `save()` of the same image in this
 * process and be read by skopeo; a client that disconnects midway must make
 * the server cancel its layer stream; a client that reads slowly must not
 * make the server pull ahead or grow its memory. `/stats` of the examples
 * reports what was pulled from the generated layer and the server's RSS.
 * The worker module is called in-process.
 *
 * skopeo and docker-registry parts skip when those are missing, unless CI is
 * set (`tests/_kit/skopeo.ts`, `tests/_kit/registry.ts`).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { get, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { save } from "../../src/save/save.ts";
import {
  bigImage,
  SAMPLE_TAG,
  sampleImage,
  type Stats,
  stats as localStats,
} from "../../examples/_image.ts";
import worker from "../../examples/worker.ts";
import { concat, readAll } from "../_kit/bytes.ts";
import { Cleanup } from "../_kit/cleanup.ts";
import { goldenCases } from "../_kit/golden.ts";
import { killOnExit, stopChild } from "../_kit/processes.ts";
import {
  pushLayout,
  registrySkip,
  requireRegistryTools,
  startRegistry,
} from "../_kit/registry.ts";
import { requireSkopeo, skopeo, skopeoSkip } from "../_kit/skopeo.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";
import { sha256Hex } from "../_kit/digest.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const MiB = 1024 * 1024;
/** Size of the generated layer the disconnect and slow-client tests ask for. */
const BIG_MIB = 256;
/**
 * How far the server may pull the generated layer ahead of what a stalled
 * client has received: the pipeline's read-ahead, the HTTP server's buffers
 * and the kernel's loopback socket buffers (up to ~4 MiB send + ~6 MiB
 * receive with autotuning; measured: ~4.3 MiB). Far below the layer's 256 MiB.
 */
const PULL_AHEAD_BOUND = 16 * MiB;
/** How much a slow client may grow the server's resident memory. */
const RSS_GROWTH_BOUND = 64 * MiB;
/** The slow client's last stall, longer than Bun.serve's default 10 s. */
const LONG_STALL_MS = 11_000;

const VERBOSE = process.env.SERVE_TEST_VERBOSE === "1";
function log(...args: unknown[]): void {
  if (VERBOSE) console.log("[serve]", ...args);
}

const SERVERS = {
  deno: [
    join(ROOT, "node_modules/.bin/deno"),
    "run",
    "-A",
    "examples/deno_server.ts",
  ],
  bun: [join(ROOT, "node_modules/.bin/bun"), "examples/bun_server.ts"],
} as const;
type Runtime = keyof typeof SERVERS;

// --- Servers as child processes ----------------------------------------------

interface Server {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** What it wrote on stderr so far. */
  stderr(): string;
}

/**
 * Runs `fn` against a fresh server; the server is stopped by its PID
 * afterwards, also when `fn` or the start fails, and its stderr is added to
 * a failure's message.
 */
async function withServer(
  runtime: Runtime,
  env: Record<string, string>,
  fn: (server: Server) => Promise<void>,
): Promise<void> {
  const [command, ...args] = SERVERS[runtime];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const forget = killOnExit(child);
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk) => stderr += String(chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", resolve));
  child.once("error", (error) => stderr += `spawn failed: ${error.message}`);
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${runtime} server did not start in 60 s`)),
        60_000,
      );
      child.stdout!.on("data", (chunk) => {
        stdout += String(chunk);
        const match = /Listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${runtime} server exited before listening`));
      });
    });
    log(runtime, "listening on", url);
    await fn({ url, port: Number(new URL(url).port), stderr: () => stderr });
  } catch (error) {
    if (error instanceof Error) {
      error.message += `\n--- ${runtime} server stderr ---\n${stderr}`;
    }
    throw error;
  } finally {
    forget();
    await stopChild(child, exited);
    child.stdout!.destroy();
    child.stderr!.destroy();
  }
}

// --- Clients -----------------------------------------------------------------

interface Download {
  status: number;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
}

/** A whole response, with node:http's `get`. */
function download(url: string): Promise<Download> {
  return new Promise((resolve, reject) => {
    get(url, (response) => {
      const chunks: Uint8Array[] = [];
      response.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: concat(chunks),
        }));
    }).on("error", reject);
  });
}

/**
 * An HTTP/1.1 GET on a raw socket that is read only when asked, so the
 * client's pace (and a disconnect) is exactly what the test says: between
 * reads the socket is paused, and TCP flow control stops the server.
 */
class RawClient {
  readonly socket: Socket;
  /** Response bytes received (headers and chunked framing included). */
  received = 0;
  #head = "";

  constructor(port: number, path: string) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("error", () => {});
    this.socket.pause();
    this.socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    );
  }

  /** One chunk as the socket delivers it (at most ~64 KiB); null at end. */
  read(): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const done = (value: Uint8Array | null, error?: Error) => {
        this.socket.off("data", onData).off("end", onEnd).off("error", onEnd);
        this.socket.pause();
        if (error) reject(error);
        else resolve(value);
      };
      const onData = (chunk: Uint8Array) => {
        this.received += chunk.byteLength;
        if (this.#head.length < 4096) {
          this.#head += new TextDecoder().decode(chunk.subarray(0, 4096));
        }
        done(chunk);
      };
      const onEnd = (error?: Error) => done(null, error);
      this.socket.on("data", onData).once("end", onEnd).once("error", onEnd);
      this.socket.resume();
    });
  }

  /** Reads until at least `bytes` were received. */
  async readAtLeast(bytes: number): Promise<void> {
    while (this.received < bytes) {
      if (await this.read() === null) throw new Error("response ended early");
    }
  }

  /** The status line. */
  status(): string {
    return this.#head.split("\r\n")[0];
  }
}

async function serverStats(server: Server): Promise<Stats> {
  const response = await download(`${server.url}/stats`);
  assert.equal(response.status, 200);
  return JSON.parse(new TextDecoder().decode(response.body));
}

/** The one generated-layer stream opened after `before`. */
async function newStream(server: Server, before: Stats) {
  const known = new Set(before.streams.map((s) => s.id));
  const fresh = (await serverStats(server)).streams.filter((s) =>
    !known.has(s.id)
  );
  assert.equal(fresh.length, 1, `expected one new layer stream: ${fresh}`);
  return fresh[0];
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, ms));

async function skopeoReads(tar: Uint8Array, tag: string): Promise<void> {
  if (skopeoSkip) return; // skopeo missing and not on CI
  requireSkopeo();
  const work = await mkdtemp(join(tmpdir(), "docker-save-serve-"));
  try {
    const file = join(work, "download.tar");
    await writeFile(file, tar);
    await skopeo([
      "--insecure-policy",
      "copy",
      "--quiet",
      `docker-archive:${file}:${tag}`,
      `dir:${join(work, "dir")}`,
    ]);
    const manifest = JSON.parse(
      await readFile(join(work, "dir", "manifest.json"), "utf8"),
    );
    assert.ok(manifest.layers.length > 0, "skopeo copied no layers");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// --- Tests -------------------------------------------------------------------

const goldens = goldenCases().filter((c) => c.save.length === 1);

for (const runtime of Object.keys(SERVERS) as Runtime[]) {
  test(
    `${runtime} server: a download equals save() in-process and skopeo reads it`,
    { timeout: TOOL_TIMEOUT },
    () =>
      withServer(runtime, {}, async (server) => {
        const tag = "registry.example.com/served:v1";
        const got = await download(
          `${server.url}/save?tag=${encodeURIComponent(tag)}`,
        );
        assert.equal(got.status, 200);
        assert.equal(got.headers["content-type"], "application/x-tar");
        assert.equal(
          got.headers["content-disposition"],
          'attachment; filename="registry.example.com_served_v1.tar"',
        );
        const expected = await readAll(save([[tag, await sampleImage()]]));
        assert.equal(got.body.byteLength, expected.byteLength);
        assert.equal(sha256Hex(got.body), sha256Hex(expected));
        // saveResponse(): a length and a strong ETag up front. Bun.serve
        // drops the Content-Length of a streamed body and sends it chunked
        // (oven-sh/bun#10507, open in Bun 1.4); where it is sent, it is right.
        assert.equal(
          got.headers["content-length"] ??
            (runtime === "bun" ? String(expected.byteLength) : undefined),
          String(expected.byteLength),
        );
        assert.match(String(got.headers["etag"]), /^"[^"]+"$/);
        await skopeoReads(got.body, tag);

        const bad = await download(`${server.url}/save?tag=Bad:x:y`);
        assert.equal(bad.status, 400);
        assert.match(new TextDecoder().decode(bad.body), /^BAD_TAG/);
      }),
  );

  test(
    `${runtime} server: OCI layouts give the golden tarballs`,
    { timeout: TOOL_TIMEOUT },
    () =>
      withServer(
        runtime,
        { OCI_ROOT: join(ROOT, "tests/testdata") },
        async (server) => {
          for (const golden of goldens) {
            const [{ ref, tag }] = golden.save;
            const got = await download(
              `${server.url}/save?oci=${golden.name}/oci&ref=${
                encodeURIComponent(ref)
              }&tag=${encodeURIComponent(tag)}`,
            );
            assert.equal(got.status, 200, golden.name);
            assert.equal(
              sha256Hex(got.body),
              sha256Hex(golden.expected),
              `${golden.name}: not the golden tarball`,
            );
          }
          const outside = await download(`${server.url}/save?oci=../basic/oci`);
          assert.equal(outside.status, 400);
          const missing = await download(`${server.url}/save?oci=nothing/oci`);
          assert.equal(missing.status, 404);
        },
      ),
  );

  test(
    `${runtime} server: a registry image gives the golden tarball`,
    { skip: registrySkip, timeout: TOOL_TIMEOUT },
    async () => {
      requireRegistryTools();
      const cleanup = new Cleanup();
      try {
        const registry = await startRegistry(cleanup);
        const basic = goldens.find((c) => c.name === "basic")!;
        await pushLayout(
          `${basic.dir}/oci`,
          "basic",
          registry.url,
          "golden/basic",
          "v1",
        );
        await withServer(
          runtime,
          { REGISTRIES: registry.host },
          async (server) => {
            const image = `${registry.host}/golden/basic:v1`;
            const got = await download(
              `${server.url}/save?image=${encodeURIComponent(image)}&tag=${
                encodeURIComponent(basic.save[0].tag)
              }`,
            );
            assert.equal(got.status, 200, new TextDecoder().decode(got.body));
            assert.equal(sha256Hex(got.body), sha256Hex(basic.expected));
            const denied = await download(
              `${server.url}/save?image=docker.io/library/alpine:3.20`,
            );
            assert.equal(denied.status, 403);
          },
        );
      } finally {
        await cleanup.close();
      }
    },
  );

  test(
    `${runtime} server: a client that disconnects midway cancels the layer stream`,
    { timeout: TOOL_TIMEOUT },
    () =>
      withServer(runtime, {}, async (server) => {
        const before = await serverStats(server);
        const client = new RawClient(server.port, `/save?big=${BIG_MIB}`);
        await client.readAtLeast(16 * 1024);
        assert.match(client.status(), /^HTTP\/1\.1 200 /);
        // Let the server fill the socket buffers, then hang up.
        await sleep(300);
        const atDisconnect = await newStream(server, before);
        client.socket.destroy();

        let stream = atDisconnect;
        for (let i = 0; i < 100 && stream.state === "open"; i++) {
          await sleep(50);
          stream = await newStream(server, before);
        }
        assert.equal(
          stream.state,
          "cancelled",
          `the layer stream is ${stream.state} after the client left`,
        );
        await sleep(500);
        const later = await newStream(server, before);
        log(runtime, "disconnect", {
          received: client.received,
          pulledAtDisconnect: atDisconnect.pulled,
          pulledAtCancel: stream.pulled,
          pulledLater: later.pulled,
          size: stream.size,
        });
        assert.equal(later.pulled, stream.pulled, "pulled after cancel");
        assert.ok(
          stream.pulled - client.received <= PULL_AHEAD_BOUND,
          `pulled ${stream.pulled} bytes for ${client.received} received`,
        );
        assert.match(server.stderr(), /cancelled after \d+ of \d+ bytes/);
      }),
  );

  test(
    `${runtime} server: a slow client keeps the server's pulls and memory bounded`,
    { timeout: TOOL_TIMEOUT },
    () =>
      withServer(runtime, {}, async (server) => {
        // HEAD computes the generated layer's digest, so the baseline
        // includes it.
        const head = await fetch(`${server.url}/save?big=${BIG_MIB}`, {
          method: "HEAD",
        });
        assert.equal(head.status, 200);
        await head.body?.cancel();
        const before = await serverStats(server);
        assert.equal(typeof before.rss, "number", "the server reports no RSS");

        const client = new RawClient(server.port, `/save?big=${BIG_MIB}`);
        const samples: { received: number; pulled: number; rss: number }[] = [];
        for (let i = 0; i < 6; i++) {
          assert.notEqual(await client.read(), null);
          await sleep(1000);
          const now = await serverStats(server);
          const stream = await newStream(server, before);
          samples.push({
            received: client.received,
            pulled: stream.pulled,
            rss: now.rss!,
          });
        }
        log(runtime, "slow client", { rssBefore: before.rss, samples });
        assert.match(client.status(), /^HTTP\/1\.1 200 /);
        const last = samples.at(-1)!;
        // A long stall: nothing more is pulled while the client does not
        // read, and the server keeps the response (Bun.serve would time it
        // out after 10 s without `idleTimeout: 0`); then it goes on.
        await sleep(LONG_STALL_MS);
        const stalled = await newStream(server, before);
        assert.equal(stalled.state, "open", "the response was dropped");
        assert.equal(stalled.pulled, last.pulled, "pulled while stalled");
        const resumed = client.received;
        assert.notEqual(await client.read(), null, "no bytes after the stall");
        assert.ok(client.received > resumed);
        for (const sample of samples) {
          assert.ok(
            sample.pulled - sample.received <= PULL_AHEAD_BOUND,
            `pulled ${sample.pulled} bytes for ${sample.received} received`,
          );
          assert.ok(
            sample.rss - before.rss! <= RSS_GROWTH_BOUND,
            `RSS grew from ${before.rss} to ${sample.rss}`,
          );
        }
        client.socket.destroy();
      }),
  );
}

test("worker: fetch() answers with save() of the sample image", async () => {
  const response = await worker.fetch(
    new Request("http://worker.test/save?tag=edge/app:v1"),
  );
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/x-tar");
  const body = new Uint8Array(await response.arrayBuffer());
  const expected = await readAll(save([["edge/app:v1", await sampleImage()]]));
  assert.equal(sha256Hex(body), sha256Hex(expected));

  const untagged = await worker.fetch(new Request("http://worker.test/save"));
  assert.equal(
    sha256Hex(new Uint8Array(await untagged.arrayBuffer())),
    sha256Hex(await readAll(save([[SAMPLE_TAG, await sampleImage()]]))),
  );
  // A worker has no files and, by default, no registries.
  const oci = await worker.fetch(
    new Request("http://worker.test/save?oci=basic/oci"),
  );
  assert.equal(oci.status, 404);
  await oci.body?.cancel();
  const registry = await worker.fetch(
    new Request("http://worker.test/save?image=alpine:3.20"),
  );
  assert.equal(registry.status, 403);
  await registry.body?.cancel();
});

test("worker: cancelling the response body cancels the layer stream", {
  timeout: TOOL_TIMEOUT,
}, async () => {
  await bigImage(64); // digest computed before the count starts
  const before = localStats();
  const response = await worker.fetch(
    new Request("http://worker.test/save?big=64&tag=edge/big:v1"),
  );
  const reader = response.body!.getReader();
  let received = 0;
  while (received < 4 * MiB) {
    const { done, value } = await reader.read();
    assert.ok(!done, "ended early");
    received += value.byteLength;
  }
  await reader.cancel("client gone");
  const known = new Set(before.streams.map((s) => s.id));
  const [stream] = localStats().streams.filter((s) => !known.has(s.id));
  log("worker", { received, stream });
  assert.equal(stream.state, "cancelled");
  assert.ok(stream.pulled - received <= 1 * MiB, `pulled ${stream.pulled}`);
});
