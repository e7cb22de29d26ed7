/**
 * Running a program with input and a time limit (for docker credential
 * helpers), behind `node:child_process` where the runtime has it (Node, Deno,
 * Bun). Edge runtimes and browsers cannot run programs: they get
 * `{ kind: "unavailable" }` and the caller says so.
 *
 * @module
 */

import { concatBytes } from "../util/streams.ts";
import { importNode } from "./_import.ts";

/**
 * What running a program came to.
 *
 * @example
 * ```ts
 * import type { ProgramOutcome } from "./run_program.ts";
 * const outcome: ProgramOutcome = { kind: "missing" };
 * ```
 */
export type ProgramOutcome =
  | {
    /** It ran and exited (or was killed). */
    kind: "exited";
    /** Its exit status; `null` when killed (timeout, output too large). */
    status: number | null;
    /** Its standard output, at most `maxOutput` bytes, as UTF-8. */
    stdout: string;
    /** Its standard error, at most `maxOutput` bytes, as UTF-8. */
    stderr: string;
    /** Why it was killed, if it was. */
    killed?: string;
  }
  | {
    /** It is not on `PATH`. */
    kind: "missing";
  }
  | {
    /** The runtime cannot run programs (edge, browser, no permission). */
    kind: "unavailable";
    /** Why. */
    reason: string;
  };

/**
 * Options for `runProgram`.
 *
 * @example
 * ```ts
 * import type { RunProgramOptions } from "./run_program.ts";
 * const options: RunProgramOptions = { input: "ghcr.io", timeout: 10_000 };
 * ```
 */
export interface RunProgramOptions {
  /** Written to its standard input, which is then closed. */
  input?: string;
  /**
   * Milliseconds before it is killed.
   * @default {60000}
   */
  timeout?: number;
  /**
   * Bytes of output (each stream) before it is killed.
   * @default {1048576}
   */
  maxOutput?: number;
}

/**
 * Runs `command` (looked up on `PATH`) with `args`, its input given and its
 * output collected, killed after `timeout` or `maxOutput` bytes. Never
 * throws: the outcome says what happened.
 *
 * @example
 * ```ts
 * import { runProgram } from "./run_program.ts";
 * const outcome = await runProgram("docker-credential-pass", ["get"], {
 *   input: "ghcr.io",
 * });
 * if (outcome.kind === "exited" && outcome.status === 0) console.log("found");
 * ```
 */
export async function runProgram(
  command: string,
  args: readonly string[],
  options: RunProgramOptions = {},
): Promise<ProgramOutcome> {
  const childProcess = await importNode<typeof import("node:child_process")>(
    "node:child_process",
  );
  if (!childProcess?.spawn) {
    return { kind: "unavailable", reason: "this runtime cannot run programs" };
  }
  const timeout = options.timeout ?? 60_000;
  const maxOutput = options.maxOutput ?? 1024 * 1024;
  let child: import("node:child_process").ChildProcess;
  try {
    child = childProcess.spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
    });
  } catch (error) {
    return spawnFailure(error);
  }
  return await new Promise<ProgramOutcome>((resolve) => {
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    const sizes = { out: 0, err: 0 };
    let killed: string | undefined;
    const kill = (reason: string) => {
      killed ??= reason;
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    };
    const timer = setTimeout(
      () => kill(`no answer in ${timeout} ms`),
      timeout,
    );
    const collect =
      (into: Uint8Array[], key: "out" | "err") => (chunk: Uint8Array) => {
        sizes[key] += chunk.byteLength;
        if (sizes[key] > maxOutput) {
          kill(`more than ${maxOutput} bytes of output`);
        } else into.push(chunk);
      };
    child.stdout?.on("data", collect(out, "out"));
    child.stderr?.on("data", collect(err, "err"));
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve(spawnFailure(error));
    });
    child.once("close", (status) => {
      clearTimeout(timer);
      const text = (chunks: Uint8Array[]) =>
        new TextDecoder().decode(concatBytes(chunks));
      resolve({
        kind: "exited",
        status: killed ? null : status,
        stdout: text(out),
        stderr: text(err),
        ...(killed ? { killed } : {}),
      });
    });
    child.stdin?.on("error", () => {/* it exited before reading */});
    child.stdin?.end(options.input ?? "");
  });
}

function spawnFailure(error: unknown): ProgramOutcome {
  const code = (error as { code?: unknown })?.code;
  if (code === "ENOENT") return { kind: "missing" };
  return {
    kind: "unavailable",
    reason: `this runtime cannot run programs here (${
      typeof code === "string" ? code : (error as Error)?.name ?? "error"
    })`,
  };
}
