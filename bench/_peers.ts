/**
 * The peers we are measured against: Debian 12's skopeo on this machine, and
 * skopeo 1.22 and crane 0.20 from the Debian sid chroot that
 * `scripts/modern-loaders.sh start` builds (only its files are needed: the
 * peers run with `chroot`, no daemon). The chroot sees its own /tmp, so the
 * fixture is hard-linked into it (copied across file systems).
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import process from "node:process";

const DIR = process.env.MODERN_LOADERS_DIR ?? "/var/lib/docker-save-modern";
/** The chroot of `scripts/modern-loaders.sh`. */
export const MODERN_ROOT = join(DIR, "root");
/** The bench's scratch dir as the chroot sees it. */
const INSIDE_ROOT = "/tmp/docker-save-bench";

/** Debian 12's skopeo. */
export const HOST_SKOPEO = "/usr/bin/skopeo";

/** Whether Debian 12's skopeo runs here. */
export function hasHostSkopeo(): boolean {
  return spawnSync(HOST_SKOPEO, ["--version"]).status === 0;
}

/**
 * Why the chroot's peers cannot run (a message for the report), or
 * `undefined` when they can.
 */
export function modernAbsence(): string | undefined {
  if (!existsSync(join(MODERN_ROOT, ".docker-save-modern-loaders"))) {
    return `the modern-loaders chroot is absent (${MODERN_ROOT}; build it with scripts/modern-loaders.sh start, as root)`;
  }
  if (process.getuid?.() !== 0) return "running the chroot's peers needs root";
  return undefined;
}

/** `package version` of the chroot's peers, comma-separated. */
export function modernVersions(): string {
  const r = spawnSync("chroot", [
    MODERN_ROOT,
    "dpkg-query",
    "-W",
    "-f",
    "${Package} ${Version}, ",
    "skopeo",
    "crane",
  ], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.replace(/, $/, "") : "unknown";
}

/** The command line that runs `args` inside the chroot. */
export function inModern(args: string[]): string[] {
  return ["chroot", MODERN_ROOT, ...args];
}

/** A path in the bench's scratch dir of the chroot: inside and from here. */
export interface ModernPath {
  inside: string;
  host: string;
}

/** `name` in the chroot's scratch dir. */
export function modernPath(name: string): ModernPath {
  const inside = join(INSIDE_ROOT, name);
  return { inside, host: join(MODERN_ROOT, inside) };
}

/**
 * Makes a fixture dir visible in the chroot (hard links, else a copy);
 * resolves with its path there.
 */
export function shareWithModern(dir: string): string {
  const target = modernPath(basename(dir));
  if (!existsSync(target.host)) {
    mkdirSync(join(MODERN_ROOT, INSIDE_ROOT), { recursive: true });
    const linked = spawnSync("cp", ["-al", dir, target.host]).status === 0;
    if (!linked) {
      rmSync(target.host, { recursive: true, force: true });
      cpSync(dir, target.host, { recursive: true });
    }
  }
  return target.inside;
}

/** Removes the bench's scratch dir from the chroot. */
export function cleanModern(): void {
  rmSync(join(MODERN_ROOT, INSIDE_ROOT), { recursive: true, force: true });
}
