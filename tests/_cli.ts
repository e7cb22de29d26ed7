/**
 * Runs the CLI (src/cli.ts) as a child process on the runtime running the
 * test, with no docker config of the machine's user.
 *
 * @module
 */

import { execFile } from "node:child_process";
import process from "node:process";

const CLI = new URL("../src/cli.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

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
