/**
 * Running one command, timed: wall time measured around the child, and peak
 * RSS and CPU from `/usr/bin/time -f '%e %M %U %S'` (GNU time, a public
 * tool; the peak RSS is the largest single process of the tree, as wait4
 * reports it). Also the bench's scratch paths and its log.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";

/** 1 MiB. */
export const MiB = 1024 * 1024;
/** Scratch and fixture cache. */
export const ROOT = "/tmp/docker-save-bench";
/** Where our CLI writes. */
export const OUT_TAR = join(ROOT, "out.tar");
/** Where the `cat`/`zcat` baselines write. */
export const OUT_BIN = join(ROOT, "out.bin");
/** Where Debian 12's skopeo writes. */
export const SKOPEO_TAR = join(ROOT, "skopeo.tar");
/** skopeo's TMPDIR. */
export const SKOPEO_TMP = join(ROOT, "skopeo-tmp");
const TIME_FILE = join(ROOT, "time.txt");
const LOCK_FILE = join(ROOT, "lock.pid");
/** Files other than the above that `cleanOutputs` removes (peers' outputs). */
const extraOutputs = new Set<string>();

/**
 * Makes the scratch directory and holds it for this process: two benches at
 * once would share its output and `time.txt` files, delete each other's
 * outputs mid-run and read each other's RSS. A second bench exits with one
 * line naming the first; a lock left by a process that is gone is taken over.
 *
 * @example
 * ```ts
 * import { claimScratch } from "./_harness.ts";
 * claimScratch("bench/save.bench.ts");
 * ```
 */
export function claimScratch(bench: string): void {
  mkdirSync(ROOT, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(LOCK_FILE, `${process.pid}\n`, { flag: "wx" });
      process.on("exit", () => rmSync(LOCK_FILE, { force: true }));
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number(readFileSync(LOCK_FILE, "utf8").trim());
    if (holder > 0 && processIsAlive(holder)) {
      console.error(
        `${bench}: another bench (pid ${holder}) is using ${ROOT}; run one at a time`,
      );
      process.exit(2);
    }
    rmSync(LOCK_FILE, { force: true });
  }
  throw new Error(`could not take ${LOCK_FILE}`);
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** One timed run. */
export interface RunResult {
  ok: boolean;
  /** Wall seconds, from GNU time's %e. */
  wall: number;
  /** Wall seconds measured here around the child (ms resolution). */
  wallPrecise: number;
  rssKiB: number;
  /** User + system CPU seconds (%U + %S). */
  cpu: number;
  outputBytes?: number;
  error?: string;
}

/** How `timed` runs a command. */
export interface TimedOptions {
  /** Working directory. */
  cwd: string;
  /** File that receives stdout (else discarded). */
  stdoutPath?: string;
  /** File whose size is the run's output size. */
  outputPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs `argv` under `/usr/bin/time`, timed. */
export function timed(argv: string[], opts: TimedOptions): RunResult {
  rmSync(TIME_FILE, { force: true });
  const stdoutFd = opts.stdoutPath ? openSync(opts.stdoutPath, "w") : "ignore";
  const started = performance.now();
  const child = spawnSync(
    "/usr/bin/time",
    ["-f", "%e %M %U %S", "-o", TIME_FILE, ...argv],
    {
      cwd: opts.cwd,
      stdio: ["ignore", stdoutFd, "pipe"],
      env: opts.env ?? process.env,
      maxBuffer: 64 * MiB,
    },
  );
  const wallPrecise = (performance.now() - started) / 1000;
  if (typeof stdoutFd === "number") closeSync(stdoutFd);
  const timeText = existsSync(TIME_FILE) ? readFileSync(TIME_FILE, "utf8") : "";
  // time writes "Command exited with non-zero status N" before the numbers.
  const last = timeText.trim().split("\n").pop() ?? "";
  const [wallText, rssText, userText, sysText] = last.split(" ");
  const result: RunResult = {
    ok: child.status === 0,
    wall: Number(wallText),
    wallPrecise,
    rssKiB: Number(rssText),
    cpu: Number(userText) + Number(sysText),
  };
  if (opts.outputPath && existsSync(opts.outputPath)) {
    result.outputBytes = statSync(opts.outputPath).size;
  }
  if (!result.ok) {
    const stderr = child.stderr?.toString().trim() ?? "";
    result.error = `exit ${child.status ?? child.signal}: ${
      stderr.split("\n").slice(-3).join(" | ").slice(0, 400)
    }`;
  }
  return result;
}

/** Also remove `path` (a peer's output file or dir) in `cleanOutputs`. */
export function registerOutput(path: string): void {
  extraOutputs.add(path);
}

/** Removes every output, so each run starts from an empty disk. */
export function cleanOutputs(): void {
  for (const path of [OUT_TAR, OUT_BIN, SKOPEO_TAR, SKOPEO_TMP]) {
    rmSync(path, { recursive: true, force: true });
  }
  for (const path of extraOutputs) {
    rmSync(path, { recursive: true, force: true });
  }
  for (const name of readdirSync(ROOT)) {
    if (name.startsWith("out.tar.") && name.endsWith(".tmp")) {
      rmSync(join(ROOT, name), { force: true });
    }
  }
}

const benchStart = performance.now();

/** Seconds since the bench started. */
export function elapsedSeconds(): number {
  return (performance.now() - benchStart) / 1000;
}

/** A progress line on stderr, with the time since start. */
export function log(message: string): void {
  const s = elapsedSeconds();
  const clock = `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
  process.stderr.write(`[bench ${clock}] ${message}\n`);
}
