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

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { packTar } from "modern-tar";
import { sha256Hex } from "./digest.ts";
import type { SaveJob } from "./modern_save.ts";
import { run } from "./processes.ts";
import { CI } from "./tools.ts";

/** The script that builds, starts and stops the environment. */
export const MODERN_SCRIPT = new URL(
  "../../scripts/modern-loaders.sh",
  import.meta.url,
).pathname;

const DIR = process.env.MODERN_LOADERS_DIR ?? "/var/lib/docker-save-modern";
/** The chroot (the script's `MODERN_LOADERS_ROOT`). */
export const MODERN_ROOT = join(DIR, "root");

const built = existsSync(join(MODERN_ROOT, ".docker-save-modern-loaders"));
const root = process.getuid?.() === 0;

/**
 * The `skip` option for tests of the modern loaders: a reason locally when
 * the chroot is not built or we are not root; `false` on CI.
 */
export const modernSkip: string | false = CI || (built && root) ? false : (
  root
    ? `modern loaders not built (run: ${MODERN_SCRIPT} start)`
    : "modern loaders need root (chroot)"
);

const runtime = (globalThis as { Deno?: unknown }).Deno
  ? "deno"
  : (globalThis as { Bun?: unknown }).Bun
  ? "bun"
  : "node";

/**
 * The `skip` option for the loader checks: they run once, under node (on
 * tarballs node, deno and bun write alike, see `saveOnEveryRuntime`), and
 * as `modernSkip` says there.
 */
export const loaderSkip: string | false = runtime === "node"
  ? modernSkip
  : "the loader checks run once, under node, on tarballs node, deno and bun write byte for byte alike";

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

/** containerd's (and docker's) normalised name of a tag, by its rules. */
export function normalised(tag: string): string {
  const slash = tag.indexOf("/");
  const first = slash < 0 ? "" : tag.slice(0, slash);
  const hasHost = first.includes(".") || first.includes(":") ||
    first === "localhost";
  if (hasHost) return tag;
  return `docker.io/${slash < 0 ? `library/${tag}` : tag}`;
}

/**
 * Removes images from a containerd namespace (docker's is `moby`) by tag,
 * raw or normalised.
 */
export async function forget(
  tags: readonly string[],
  namespace = "moby",
): Promise<void> {
  const wanted = new Set(tags.flatMap((tag) => [tag, normalised(tag)]));
  const names = (await inModern(["ctr", "-n", namespace, "images", "ls", "-q"]))
    .split("\n").filter((name) => wanted.has(name));
  if (names.length) {
    await inModern(["ctr", "-n", namespace, "images", "rm", ...names]);
  }
}

/**
 * Waits until containerd's garbage collector has dropped the blobs
 * `digests` from a namespace's content store: an import writes every blob
 * of a tarball and drops what no image needs a moment later.
 */
export async function untilCollected(
  digests: readonly string[],
  namespace = "moby",
  timeout = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const held = new Set(
      (await inModern(["ctr", "-n", namespace, "content", "ls", "-q"]))
        .split("\n"),
    );
    const left = digests.filter((digest) => held.has(digest));
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`containerd still holds ${left.join(", ")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A layer holding `/bin/busybox` (static, from the chroot), mode 0755. */
export async function busyboxLayer(): Promise<Uint8Array> {
  const busybox = new Uint8Array(
    await readFile(join(MODERN_ROOT, "bin", "busybox")),
  );
  const mtime = new Date(0);
  return await packTar([
    {
      header: { name: "bin/", type: "directory", size: 0, mode: 0o755, mtime },
    },
    {
      header: {
        name: "bin/busybox",
        size: busybox.byteLength,
        mode: 0o755,
        mtime,
      },
      body: busybox,
    },
  ]);
}

const REPO = new URL("../../", import.meta.url).pathname;
const GENERATOR = join(REPO, "tests", "_kit", "modern_save.ts");
const bin = (name: string) => join(REPO, "node_modules", ".bin", name);
const RUNTIMES: Record<string, string[]> = {
  node: [process.execPath, "--import", "tsx", GENERATOR],
  deno: [bin("deno"), "run", "-A", GENERATOR],
  bun: [bin("bun"), GENERATOR],
};

/**
 * Writes every job's tarball with tests/_kit/modern_save.ts under node, deno
 * and bun, into `DIR/out-<runtime>/<job>.tar`; resolves with node's dir
 * and, per job, the sha256 of each runtime's tarball (the caller checks
 * they agree).
 */
export async function saveOnEveryRuntime(
  jobs: readonly SaveJob[],
  dir: string,
): Promise<{ outputs: string; digests: Map<string, string[]> }> {
  const jobsFile = join(dir, "jobs.json");
  await writeFile(jobsFile, JSON.stringify(jobs));
  for (const [name, command] of Object.entries(RUNTIMES)) {
    const out = join(dir, `out-${name}`);
    await mkdir(out);
    await run(command[0], [...command.slice(1), jobsFile, out]);
  }
  const digests = new Map<string, string[]>();
  for (const job of jobs) {
    digests.set(
      job.name,
      await Promise.all(
        Object.keys(RUNTIMES).map(async (name) =>
          sha256Hex(
            new Uint8Array(
              await readFile(join(dir, `out-${name}`, `${job.name}.tar`)),
            ),
          )
        ),
      ),
    );
  }
  return { outputs: join(dir, "out-node"), digests };
}
