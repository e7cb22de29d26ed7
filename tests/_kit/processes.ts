/**
 * Child processes of the tests: the CLI (src/cli.ts) or another script on
 * the runtime running the test, with no docker config of the machine's
 * user; a run bounded in time and memory; a host command; a child stopped
 * by its PID.
 *
 * @module
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";

const CLI = new URL("../../src/cli.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

/** What one CLI run gave. */
export interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** The command line that runs the CLI (or another script) on this runtime. */
export function runtimeCommand(script: string = CLI): string[] {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Deno) return [process.execPath, "run", "-A", script];
  if (g.Bun) return [process.execPath, script];
  return [process.execPath, "--import", "tsx", script];
}

/**
 * Runs the CLI with `args` (and extra environment), from the repo root;
 * with `timeout`, it is killed (SIGTERM) after that many milliseconds.
 */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: { timeout?: number } = {},
): Promise<Run> {
  const [cmd, ...pre] = runtimeCommand();
  return new Promise((resolve) => {
    execFile(
      cmd,
      [...pre, ...args],
      {
        cwd: ROOT,
        encoding: "buffer",
        maxBuffer: 64 << 20,
        timeout: options.timeout ?? 0,
        // No docker config of the machine's user leaks into the tests.
        env: { ...process.env, DOCKER_CONFIG: "/nonexistent", ...env },
      },
      (error, stdout, stderr) => {
        resolve({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          stdout,
          stderr: stderr.toString(),
        });
      },
    );
  });
}

/**
 * Limits of one bounded run: killed (SIGKILL, which a process stuck in
 * `open()` still obeys) past its time or when its resident memory passes a
 * cap, so a test of a hang or a memory blow-up fails in seconds instead of
 * taking the test run down with it.
 */
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

/**
 * Stops a child process by its PID: SIGTERM, then SIGKILL after 5 s;
 * resolves once it has exited (`exited`).
 */
export async function stopChild(
  child: ChildProcess,
  exited: Promise<void>,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) {
    return;
  }
  try {
    process.kill(child.pid, "SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid!, "SIGKILL");
    } catch { /* gone */ }
  }, 5000);
  await exited;
  clearTimeout(timer);
}

/** Per-command timeout. */
export const COMMAND_TIMEOUT = 300_000;

/** A failed command, with what it printed. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stdout: string,
    readonly stderr: string,
    cause: Error,
  ) {
    super(`${command}: ${stderr.trim() || cause.message}`, { cause });
  }
}

/**
 * Runs a host command (in `cwd`, default the test's; with `env`, default
 * ours); resolves with its stdout, rejects with a `CommandError` that
 * carries its stderr.
 */
export function run(
  command: string,
  args: readonly string[],
  options: { timeout?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: options.env,
        maxBuffer: 64 << 20,
        timeout: options.timeout ?? COMMAND_TIMEOUT,
      },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new CommandError(
              [command, ...args].join(" "),
              String(stdout),
              String(stderr),
              error,
            ),
          );
        } else resolve(String(stdout));
      },
    );
  });
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) {
    try {
      if (child.pid) process.kill(child.pid, "SIGKILL");
    } catch { /* already gone */ }
  }
});

/**
 * Kills `child` (SIGKILL) if the test process exits while it runs, so no
 * daemon outlives a crashed test; the returned function forgets it again.
 */
export function killOnExit(child: ChildProcess): () => void {
  running.add(child);
  return () => running.delete(child);
}
