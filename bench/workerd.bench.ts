/**
 * The worker example in workerd against the Node CLI, saving the same image
 * from a loopback registry (issue 23's budgets): the bench's fixture (one
 * layer of `--size` MiB, half random, half text, gzip -6) pushed to Debian's
 * docker-registry; per layer mode, the Node CLI (`dist/bin/docker-save.js`,
 * as npm users run it) `-o` a file, and `curl` downloading
 * `/save?image=REF[&layers=compressed]` from workerd with and without
 * `nodejs_compat` (examples/workerd.capnp, tests/_kit/workerd.ts). The runs of
 * each row are interleaved, so load from elsewhere falls on all of them.
 *
 * ```sh
 * node --import tsx bench/workerd.bench.ts [--size 256] [--runs 3] [--no-build]
 *   [--modes compressed,uncompressed] [--big 1024]
 * ```
 *
 * Reported per row: median wall (curl's, or the CLI's), the ratio to the
 * Node CLI's median, and for workerd the CPU the workerd process spent per
 * request (utime + stime from /proc/PID/stat, before and after) and the
 * process's peak resident memory during the request (VmRSS sampled every
 * 20 ms: the isolate's heap plus workerd's own buffers; workerd gives no
 * per-isolate figure) and its growth over the idle process. `--big N` also
 * saves a generated N MiB layer once per worker, for memory at any size.
 * `--stages [--mib 64]` instead times each stage of the edge path alone in
 * workerd (sha256 and gunzip by each backend, stream stages, 4 KiB chunks;
 * bench/_workerd_stages.ts).
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ensureFixture } from "./_fixture.ts";
import { pushFixture, startBenchRegistry } from "./_registry_fixture.ts";
import { median } from "./_stats.ts";
import { Cleanup, tempDir } from "../tests/_kit/cleanup.ts";
import {
  bundleWorker,
  startWorkerd,
  type Workerd,
  workerdVersion,
} from "../tests/_kit/workerd.ts";

const REPO = new URL("../", import.meta.url).pathname;
const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const SIZE = Number(option("size", "256"));
const RUNS = Number(option("runs", "3"));
const MODES = option("modes", "compressed,uncompressed").split(",")
  .filter(Boolean);
const BIG = Number(option("big", "0"));
const TICKS = 100; // USER_HZ, /proc/PID/stat's unit

/** CPU seconds (user + system) a process has used so far. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** Resident memory of a process, MiB. */
function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

interface Run {
  wall: number;
  cpu?: number;
  peakRss?: number;
  idleRss?: number;
  bytes: number;
}

/** Downloads `url` with curl into `out`, measuring workerd meanwhile. */
async function download(
  worker: Workerd,
  url: string,
  out: string,
): Promise<Run> {
  const idleRss = rssOf(worker.pid);
  let peakRss = idleRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssOf(worker.pid));
  }, 20);
  const cpuBefore = cpuOf(worker.pid);
  const started = performance.now();
  // curl runs asynchronously so the sampler keeps running.
  const curl = await new Promise<{ status: number | null; stderr: string }>(
    (resolve) => {
      const child = spawn("curl", ["-sS", "--fail", "-o", out, url], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => stderr += d);
      child.on("exit", (status) => resolve({ status, stderr }));
    },
  );
  const wall = (performance.now() - started) / 1000;
  clearInterval(sampler);
  if (curl.status !== 0) throw new Error(`curl ${url}: ${curl.stderr}`);
  return {
    wall,
    cpu: cpuOf(worker.pid) - cpuBefore,
    peakRss,
    idleRss,
    bytes: statSync(out).size,
  };
}

/**
 * Runs the CLI under GNU time (its own output file: another bench may be
 * using the shared one): wall, CPU (user + system) and peak RSS.
 */
function timeCli(argv: string[], timeFile: string): Run & { bytes: 0 } {
  const started = performance.now();
  const child = spawnSync(
    "/usr/bin/time",
    ["-f", "%M %U %S", "-o", timeFile, ...argv],
    { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] },
  );
  const wall = (performance.now() - started) / 1000;
  if (child.status !== 0) {
    throw new Error(`node CLI: ${child.stderr?.toString().slice(-400)}`);
  }
  const [rss, user, sys] = readFileSync(timeFile, "utf8").trim().split("\n")
    .pop()!.split(" ").map(Number);
  return { wall, cpu: user + sys, peakRss: rss / 1024, bytes: 0 };
}

const STAGE_OPS = [
  "gen",
  "sha-node",
  "sha-digest-stream",
  "sha-noble",
  "inflate-node",
  "inflate-decompression-stream",
  "inflate-web",
  "pass",
  "small-chunks",
];

/**
 * Each stage of the edge path alone in workerd (bench/_workerd_stages.ts),
 * with and without nodejs_compat, timed from outside: medians of RUNS, MiB/s
 * of the data after the `gen` baseline is taken off.
 */
async function stages(): Promise<void> {
  const mib = Number(option("mib", "64"));
  const dir = await tempDir(cleanup, "workerd-stages");
  const bundle = await bundleWorker(
    dir,
    new URL("./_workerd_stages.ts", import.meta.url).pathname,
  );
  console.log(`\n## Stages alone, ${mib} MiB each (medians of ${RUNS})\n`);
  console.log("| op | nodejs_compat s | MiB/s | web-only s | MiB/s |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  const results: Record<string, (number | undefined)[]> = {};
  for (const nodejsCompat of [true, false]) {
    const worker = await startWorkerd(cleanup, bundle, {
      nodejsCompat,
      registries: [],
    });
    // Makes the isolate's data and gzip once, outside the timings.
    await (await fetch(`${worker.url}/?op=inflate-web&mib=${mib}`)).text();
    for (const op of STAGE_OPS) {
      const times: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const started = performance.now();
        const response = await fetch(`${worker.url}/?op=${op}&mib=${mib}`);
        await response.text();
        if (response.status !== 200) break;
        times.push((performance.now() - started) / 1000);
      }
      (results[op] ??= []).push(times.length ? median(times) : undefined);
    }
  }
  const [baseCompat, baseWeb] = results.gen as number[];
  const cell = (seconds: number | undefined, base: number, op: string) =>
    seconds === undefined
      ? "n/a | n/a"
      : `${seconds.toFixed(2)} | ${
        op === "gen" ? "" : (mib / Math.max(seconds - base, 1e-3)).toFixed(0)
      }`;
  for (const op of STAGE_OPS) {
    const [compat, web] = results[op];
    console.log(
      `| ${op} | ${cell(compat, baseCompat, op)} | ${cell(web, baseWeb, op)} |`,
    );
  }
  console.log(`\nload after: ${load().join(" ")}`);
  await cleanup.close();
}

/** The load averages (1, 5, 15 minutes), as `uptime` prints them. */
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3);
const cleanup = new Cleanup();
try {
  console.log(
    `# workerd bench: ${SIZE} MiB layer, ${RUNS} runs, ${workerdVersion()}, node ${process.version}, load ${
      load().join(" ")
    }`,
  );
  if (args.includes("--stages")) {
    await stages();
    process.exit(0);
  }
  if (!args.includes("--no-build")) {
    const built = spawnSync(
      process.execPath,
      ["--import", "tsx", "scripts/build.ts"],
      { cwd: REPO, stdio: "inherit" },
    );
    if (built.status !== 0) throw new Error("build failed");
  }
  const fixture = await ensureFixture(SIZE);
  const registry = await startBenchRegistry(cleanup);
  const reference = await pushFixture(registry, fixture);
  const dir = await tempDir(cleanup, "workerd-bench");
  const bundle = await bundleWorker(dir);
  const workers: Record<string, Workerd> = {};
  for (const compat of [true, false]) {
    workers[compat ? "workerd nodejs_compat" : "workerd web-only"] =
      await startWorkerd(cleanup, bundle, {
        nodejsCompat: compat,
        registries: [registry.host],
      });
  }
  const out = join(dir, "out.tar");
  for (const mode of MODES) {
    const runs: Record<string, Run[]> = { "node CLI": [] };
    for (const name of Object.keys(workers)) runs[name] = [];
    for (let run = 0; run < RUNS; run++) {
      rmSync(out, { force: true });
      const cli = timeCli(
        [
          join(REPO, "dist/bin/docker-save.js"),
          "-q",
          "-o",
          out,
          "--layers",
          mode,
          reference,
        ],
        join(dir, "time.txt"),
      );
      runs["node CLI"].push({ ...cli, bytes: statSync(out).size });
      const expected = statSync(out).size;
      for (const [name, worker] of Object.entries(workers)) {
        rmSync(out, { force: true });
        const url = `${worker.url}/save?image=${encodeURIComponent(reference)}${
          mode === "compressed" ? "&layers=compressed" : ""
        }`;
        const got = await download(worker, url, out);
        if (got.bytes !== expected) {
          throw new Error(`${name}: ${got.bytes} bytes, the CLI ${expected}`);
        }
        runs[name].push(got);
      }
    }
    const base = median(runs["node CLI"].map((r) => r.wall));
    console.log(
      `\n## ${SIZE} MiB layer, layers: ${mode} (load ${load()[0]})\n`,
    );
    console.log(
      "| row | median wall s | / node CLI | CPU s per request | peak RSS MiB (idle) | wall s per run |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | --- |");
    for (const [name, list] of Object.entries(runs)) {
      const wall = median(list.map((r) => r.wall));
      const idle = list[0].idleRss;
      console.log(
        `| ${name} | ${wall.toFixed(2)} | ${(wall / base).toFixed(2)}× | ${
          median(list.map((r) => r.cpu ?? 0)).toFixed(2)
        } | ${Math.max(...list.map((r) => r.peakRss ?? 0)).toFixed(0)}${
          idle === undefined ? "" : ` (${idle.toFixed(0)})`
        } | ${list.map((r) => r.wall.toFixed(2)).join(" / ")} |`,
      );
    }
  }
  // Memory whatever the size: a generated layer of BIG MiB (made chunk by
  // chunk in the isolate, examples/_image.ts `?big=`), saved once per worker.
  if (BIG > 0) {
    console.log(`\n## ${BIG} MiB generated layer (?big=${BIG}), one run\n`);
    console.log(
      "| row | wall s | CPU s | peak RSS MiB (idle) | output bytes |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: |");
    for (const [name, worker] of Object.entries(workers)) {
      // The first request also hashes the layer once (its digest).
      const head = await fetch(`${worker.url}/save?big=${BIG}`, {
        method: "HEAD",
      });
      await head.body?.cancel();
      rmSync(out, { force: true });
      const got = await download(worker, `${worker.url}/save?big=${BIG}`, out);
      console.log(
        `| ${name} | ${got.wall.toFixed(2)} | ${got.cpu!.toFixed(2)} | ${
          got.peakRss!.toFixed(0)
        } (${got.idleRss!.toFixed(0)}) | ${got.bytes} |`,
      );
    }
  }
  console.log(`\nload after: ${load().join(" ")}`);
} finally {
  await cleanup.close();
}
