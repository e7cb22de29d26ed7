/**
 * Whether gunzip (and the diff_id sha256) on a second thread pays for the
 * uncompressed jobs: the bench's fixture layer (`--size` MiB, gzip -6) read
 * in 256 KiB chunks, the blob hashed, inflated through `node:zlib`, the tar
 * hashed and written to a file, three ways, each its own process:
 *
 * - `inline`: all of it on the main thread (the library's path today);
 * - `worker`: a `node:worker_threads` worker inflates and hashes the tar; the
 *   compressed chunks are transferred in (at most `IN_FLIGHT` unconsumed, the
 *   buffers handed back for the next reads), the inflated ones copied into
 *   reused buffers and transferred back in order (at most `OUT_FLIGHT`
 *   unwritten); the main thread reads, hashes the blob and writes;
 * - `inflate-only`: the same, with the tar's sha256 on the main thread.
 *
 * The runs are interleaved (one of each mode per round and runtime), so load
 * from elsewhere falls on all of them; reported per runtime and mode: median
 * wall, CPU and peak RSS (GNU time), and the CPU of the busiest thread (from
 * `/proc/self/task`, Linux only), which is what the wall could fall to with a
 * free core per thread. Every run's two digests are checked against the
 * fixture's. A timing trial only: no cancellation nor error paths.
 *
 * ```sh
 * node --import tsx bench/inflate_worker.bench.ts [--size 256] [--runs 5]
 *   [--runtimes deno,bun,node]
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { createGunzip, type Gunzip } from "node:zlib";
import { ensureFixture } from "./_fixture.ts";
import { claimScratch, log, ROOT, timed } from "./_harness.ts";
import { median } from "./_stats.ts";

const MODES = ["inline", "worker", "inflate-only"] as const;
/** How a trial splits the work between the threads. */
type TrialMode = typeof MODES[number];
const READ_SIZE = 256 * 1024;
// The library's zlib output chunk (src/runtime/decompress.ts).
const ZLIB_CHUNK = "Deno" in globalThis ? 128 * 1024 : 256 * 1024;
const IN_FLIGHT = 4;
const OUT_FLIGHT = 4;
const TRIAL_OUT = join(ROOT, "inflate-trial.tar");
const TRIAL_JSON = join(ROOT, "inflate-trial.json");

/** Messages from the main thread to the worker. */
type ToWorker =
  | { kind: "input"; buffer: ArrayBuffer; length: number }
  | { kind: "end" }
  | { kind: "written"; buffer: ArrayBuffer };
/** Messages from the worker to the main thread. */
type FromWorker =
  | { kind: "consumed"; buffer: ArrayBuffer }
  | { kind: "output"; buffer: ArrayBuffer; length: number }
  | { kind: "done"; tarDigest: string };

/** What one trial prints (one JSON line on stdout). */
interface TrialResult {
  blobDigest: string;
  tarDigest: string;
  busiestThreadCpu: number;
}

function gunzip(): Gunzip {
  return createGunzip({ chunkSize: ZLIB_CHUNK });
}

// CPU seconds of this process's busiest thread (utime + stime, 100 Hz ticks).
function busiestThreadCpu(): number {
  let most = 0;
  for (const tid of readdirSync("/proc/self/task")) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    most = Math.max(most, (Number(fields[11]) + Number(fields[12])) / 100);
  }
  return most;
}

async function inline(blobPath: string): Promise<TrialResult> {
  const input = await open(blobPath, "r");
  const output = await open(TRIAL_OUT, "w");
  const blobHash = createHash("sha256");
  const tarHash = createHash("sha256");
  const zlib = gunzip();
  const drained = (async () => {
    for await (const chunk of zlib as AsyncIterable<Uint8Array>) {
      tarHash.update(chunk);
      await output.write(chunk);
    }
  })();
  for (;;) {
    const buffer = new Uint8Array(READ_SIZE);
    const { bytesRead } = await input.read(buffer, 0, READ_SIZE, null);
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    blobHash.update(chunk);
    if (!zlib.write(chunk)) {
      await new Promise((resolve) => zlib.once("drain", resolve));
    }
  }
  zlib.end();
  await drained;
  const busiest = busiestThreadCpu();
  await input.close();
  await output.close();
  return {
    blobDigest: blobHash.digest("hex"),
    tarDigest: tarHash.digest("hex"),
    busiestThreadCpu: busiest,
  };
}

// Node 20 runs a worker without the loader hooks `--import tsx` registered
// on the main thread, so from source it registers them in the worker first.
function startWorker(workerData: { tarHashHere: boolean }): Worker {
  const self = new URL(import.meta.url);
  const nodeFromSource = !("Deno" in globalThis) && !("Bun" in globalThis) &&
    self.pathname.endsWith(".ts");
  if (!nodeFromSource) return new Worker(self, { workerData });
  const boot = `import("tsx/esm/api").then((tsx) => { tsx.register(); ` +
    `return import(${JSON.stringify(self.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

async function onWorker(
  blobPath: string,
  tarHashHere: boolean,
): Promise<TrialResult> {
  const worker = startWorker({ tarHashHere });
  const input = await open(blobPath, "r");
  const output = await open(TRIAL_OUT, "w");
  const blobHash = createHash("sha256");
  const tarHash = createHash("sha256");
  const spareInputs: ArrayBuffer[] = [];
  const written: Uint8Array[] = [];
  let inFlight = 0;
  let workerDigest = "";
  let finished = false;
  // The reading and the writing loop each wait here; any message wakes both.
  let waiters: (() => void)[] = [];
  const wakeUp = () => {
    const woken = waiters;
    waiters = [];
    for (const resolve of woken) resolve();
  };
  const sleep = () => new Promise<void>((resolve) => waiters.push(resolve));
  worker.on("message", (message: FromWorker) => {
    if (message.kind === "consumed") {
      spareInputs.push(message.buffer);
      inFlight--;
    } else if (message.kind === "output") {
      written.push(new Uint8Array(message.buffer, 0, message.length));
    } else {
      workerDigest = message.tarDigest;
      finished = true;
    }
    wakeUp();
  });
  const post = (message: ToWorker, transfer: ArrayBuffer[] = []) =>
    worker.postMessage(message, transfer);
  const writing = (async () => {
    for (;;) {
      const chunk = written.shift();
      if (!chunk) {
        if (finished) return;
        await sleep();
        continue;
      }
      if (tarHashHere) tarHash.update(chunk);
      await output.write(chunk);
      post({ kind: "written", buffer: chunk.buffer as ArrayBuffer }, [
        chunk.buffer as ArrayBuffer,
      ]);
    }
  })();
  for (;;) {
    while (inFlight >= IN_FLIGHT) await sleep();
    const buffer = spareInputs.pop() ?? new ArrayBuffer(READ_SIZE);
    const view = new Uint8Array(buffer);
    const { bytesRead } = await input.read(view, 0, READ_SIZE, null);
    if (bytesRead === 0) break;
    blobHash.update(view.subarray(0, bytesRead));
    inFlight++;
    post({ kind: "input", buffer, length: bytesRead }, [buffer]);
  }
  post({ kind: "end" });
  await writing;
  const busiest = busiestThreadCpu();
  await input.close();
  await output.close();
  await worker.terminate();
  return {
    blobDigest: blobHash.digest("hex"),
    tarDigest: tarHashHere ? tarHash.digest("hex") : workerDigest,
    busiestThreadCpu: busiest,
  };
}

async function workerThread(): Promise<void> {
  const { workerData } = await import("node:worker_threads");
  const tarHashHere = (workerData as { tarHashHere: boolean }).tarHashHere;
  const port = parentPort!;
  const zlib = gunzip();
  const tarHash = createHash("sha256");
  const spareOutputs: ArrayBuffer[] = [];
  let unwritten = 0;
  const send = (message: FromWorker, transfer: ArrayBuffer[] = []) =>
    port.postMessage(message, transfer);
  port.on("message", (message: ToWorker) => {
    if (message.kind === "input") {
      const chunk = new Uint8Array(message.buffer, 0, message.length);
      zlib.write(
        chunk,
        () =>
          send({ kind: "consumed", buffer: message.buffer }, [message.buffer]),
      );
    } else if (message.kind === "end") {
      zlib.end();
    } else {
      spareOutputs.push(message.buffer);
      if (--unwritten < OUT_FLIGHT) zlib.resume();
    }
  });
  zlib.on("data", (chunk: Uint8Array) => {
    if (!tarHashHere) tarHash.update(chunk);
    // Deno's and Bun's zlib fill their output buffer again: copy the chunk
    // into a buffer of ours, whose ownership moves with the message.
    let buffer = spareOutputs.pop();
    if (!buffer || buffer.byteLength < chunk.byteLength) {
      buffer = new ArrayBuffer(Math.max(ZLIB_CHUNK, chunk.byteLength));
    }
    new Uint8Array(buffer).set(chunk);
    send({ kind: "output", buffer, length: chunk.byteLength }, [buffer]);
    if (++unwritten >= OUT_FLIGHT) zlib.pause();
  });
  zlib.on(
    "end",
    () => send({ kind: "done", tarDigest: tarHash.digest("hex") }),
  );
}

function trial(mode: TrialMode, blobPath: string): Promise<TrialResult> {
  if (mode === "inline") return inline(blobPath);
  return onWorker(blobPath, mode === "inflate-only");
}

function runtimeCommand(runtime: string, file: string): string[] {
  if (runtime === "deno") return ["deno", "run", "-A", file];
  if (runtime === "bun") return ["bun", file];
  return ["node", "--import", "tsx", file];
}

function flag(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(name);
  return at >= 0 && args[at + 1] ? args[at + 1] : fallback;
}

async function bench(args: string[]): Promise<void> {
  const size = Number(flag(args, "--size", "256"));
  const runs = Number(flag(args, "--runs", "5"));
  const runtimes = flag(args, "--runtimes", "deno,bun,node").split(",");
  claimScratch("bench/inflate_worker.bench.ts");
  const fixture = await ensureFixture(size);
  const self = fileURLToPath(import.meta.url);
  const rows = new Map<
    string,
    { wall: number[]; cpu: number[]; rss: number[]; busiest: number[] }
  >();
  for (let round = 1; round <= runs; round++) {
    for (const runtime of runtimes) {
      for (const mode of MODES) {
        const argv = [
          ...runtimeCommand(runtime, self),
          "--trial",
          mode,
          fixture.blobPath,
        ];
        const run = timed(argv, { cwd: process.cwd(), stdoutPath: TRIAL_JSON });
        if (!run.ok) throw new Error(`${runtime} ${mode}: ${run.error}`);
        const result = JSON.parse(
          readFileSync(TRIAL_JSON, "utf8"),
        ) as TrialResult;
        if (
          `sha256:${result.blobDigest}` !== fixture.digest ||
          `sha256:${result.tarDigest}` !== fixture.diffId
        ) {
          throw new Error(`${runtime} ${mode}: wrong digests`);
        }
        const key = `${runtime} ${mode}`;
        const row = rows.get(key) ??
          { wall: [], cpu: [], rss: [], busiest: [] };
        row.wall.push(run.wall);
        row.cpu.push(run.cpu);
        row.rss.push(run.rssKiB / 1024);
        row.busiest.push(result.busiestThreadCpu);
        rows.set(key, row);
      }
    }
    log(`round ${round} of ${runs} done`);
  }
  rmSync(TRIAL_OUT, { force: true });
  rmSync(TRIAL_JSON, { force: true });
  console.log(
    `| runtime, mode | wall s | CPU s | peak RSS MiB | busiest thread CPU s |\n| --- | --- | --- | --- | --- |`,
  );
  for (const [key, row] of rows) {
    console.log(
      `| ${key} | ${median(row.wall).toFixed(2)} | ${
        median(row.cpu).toFixed(2)
      } | ${median(row.rss).toFixed(0)} | ${median(row.busiest).toFixed(2)} |`,
    );
  }
}

if (!isMainThread) {
  await workerThread();
} else {
  const args = process.argv.slice(2);
  const at = args.indexOf("--trial");
  if (at >= 0) {
    const mode = args[at + 1] as TrialMode;
    if (!MODES.includes(mode)) throw new Error(`--trial ${MODES.join("|")}`);
    console.log(JSON.stringify(await trial(mode, args[at + 2])));
    process.exit(0);
  } else {
    await bench(args);
  }
}
