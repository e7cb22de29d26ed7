/**
 * Today's loaders for the tests: docker 28 with the containerd image store,
 * containerd 2.1 (`ctr`), crane 0.20, skopeo 1.22 and umoci from Debian sid,
 * in the chroot `scripts/modern-loaders.sh` builds and runs.
 *
 * A test file holds a lease while it runs (`acquire`/`release` with its PID):
 * the script starts the daemons if they are down and stops them after the
 * last lease, unless someone started them with `start` (as `.ci/run` does).
 * Locally the tests skip when the chroot has not been built (run
 * `scripts/modern-loaders.sh start` once, as root); with `CI` set they build
 * it and fail when they cannot.
 *
 * @module
 */

import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";

/** The script that builds, starts and stops the environment. */
export const MODERN_SCRIPT = new URL(
  "../scripts/modern-loaders.sh",
  import.meta.url,
).pathname;

const DIR = process.env.MODERN_LOADERS_DIR ?? "/var/lib/docker-save-modern";
/** The chroot (the script's `MODERN_LOADERS_ROOT`). */
export const MODERN_ROOT = join(DIR, "root");

const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const built = existsSync(join(MODERN_ROOT, ".docker-save-modern-loaders"));
const root = process.getuid?.() === 0;

/**
 * The `skip` option for tests of the modern loaders: a reason locally when
 * the chroot is not built or we are not root; `false` on CI.
 */
export const modernSkip: string | false = ci || (built && root) ? false : (
  root
    ? `modern loaders not built (run: ${MODERN_SCRIPT} start)`
    : "modern loaders need root (chroot)"
);

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

/** Runs a host command; resolves with its stdout. */
export function run(
  command: string,
  args: readonly string[],
  options: { timeout?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
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

/** Runs a command inside the chroot (`docker`, `ctr`, `skopeo`, …). */
export function inModern(
  args: readonly string[],
  options: { timeout?: number } = {},
): Promise<string> {
  return run("chroot", [MODERN_ROOT, ...args], options);
}

/**
 * Starts the environment if needed and holds a lease on it for this
 * process; resolves with the function that gives the lease back.
 */
export async function acquireModern(): Promise<() => Promise<void>> {
  await run(MODERN_SCRIPT, ["acquire", String(process.pid)], {
    timeout: 600_000,
  });
  return async () => {
    await run(MODERN_SCRIPT, ["release", String(process.pid)]);
  };
}

/** The Debian versions of the tools in the chroot, `package version` lines. */
export function modernVersions(): string {
  const result = spawnSync("chroot", [
    MODERN_ROOT,
    "dpkg-query",
    "-W",
    "-f",
    "${Package} ${Version}\\n",
    "docker.io",
    "containerd",
    "crane",
    "skopeo",
    "umoci",
  ], { encoding: "utf8" });
  return result.stdout ?? "";
}

/** A temp dir inside the chroot, seen as `inside` there and `host` here. */
export interface ModernTemp {
  /** Path on this machine. */
  host: string;
  /** The same dir as the tools in the chroot see it. */
  inside: string;
  /** Removes the dir. */
  dispose(): Promise<void>;
}

/** Makes a temp dir under the chroot's /tmp. */
export async function modernTemp(prefix: string): Promise<ModernTemp> {
  const host = await mkdtemp(
    join(MODERN_ROOT, "tmp", `docker-save-${prefix}-`),
  );
  return {
    host,
    inside: host.slice(MODERN_ROOT.length),
    dispose: () => rm(host, { recursive: true, force: true }),
  };
}
