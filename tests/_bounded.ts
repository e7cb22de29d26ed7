/**
 * Runs a script as a child process on the runtime running the test, bounded
 * in time and memory: killed (SIGKILL, which a process stuck in `open()`
 * still obeys) past its time or when its resident memory passes a cap. So a
 * test of a hang or a memory blow-up fails in seconds instead of taking the
 * test run down with it.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { runtimeCommand } from "./_cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Limits of one bounded run. */
export interface Bounds {
  /** Killed after this many milliseconds. */
  timeoutMs: number;
  /** Killed when its resident memory passes this many MiB (Linux only). */
  maxRssMiB: number;
  /** Sent after this many milliseconds, if given (a signal to end it). */
  signal?: { afterMs: number; name: NodeJS.Signals };
  /** Extra environment (names not in the test's own). */
  env?: Record<string, string>;
}

/** What one bounded run gave. */
export interface BoundedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why the run was killed, if it was. */
  killed?: "timeout" | "memory";
  /** The largest resident memory seen, in MiB (0 without /proc). */
  peakRssMiB: number;
  ms: number;
}

/** The resident memory of a process in MiB, or 0 where /proc has none. */
function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Runs `script` with `args` on this runtime (see `runtimeCommand`), from the
 * repo root, within `bounds`.
 */
export function runBounded(
  script: string,
  args: string[],
  bounds: Bounds,
): Promise<BoundedRun> {
  const [cmd, ...pre] = runtimeCommand(script);
  const started = performance.now();
  const child = spawn(cmd, [...pre, ...args], {
    cwd: ROOT,
    // The extra variables first: so they open /proc/self/environ.
    env: {
      ...bounds.env,
      ...process.env,
      DOCKER_CONFIG: "/nonexistent",
      NO_COLOR: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  let killed: BoundedRun["killed"];
  let peak = 0;
  const kill = (why: "timeout" | "memory") => {
    killed ??= why;
    child.kill("SIGKILL");
  };
  const poll = setInterval(() => {
    if (!child.pid) return;
    peak = Math.max(peak, rssMiB(child.pid));
    if (peak > bounds.maxRssMiB) kill("memory");
  }, 50);
  const timer = setTimeout(() => kill("timeout"), bounds.timeoutMs);
  const signal = bounds.signal &&
    setTimeout(() => child.kill(bounds.signal!.name), bounds.signal.afterMs);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      if (signal) clearTimeout(signal);
      resolve({
        code,
        stdout,
        stderr,
        killed,
        peakRssMiB: Math.round(peak),
        ms: Math.round(performance.now() - started),
      });
    });
  });
}
