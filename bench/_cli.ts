/**
 * Our CLI as the bench runs it, per runtime, from a snapshot of the sources
 * (mod.ts, src/, package.json, deno.json, node_modules linked) copied to
 * /tmp/docker-save-bench/snapshot/ and checked end to end on a 1 MiB image
 * on every runtime first, so that edits made to the work tree while the
 * benchmark runs cannot mix versions (the snapshot is retaken until it
 * passes). With `live`, the work tree itself.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { ensureFixture, FIXTURE_REF } from "./_fixture.ts";
import { cleanOutputs, log, OUT_TAR, ROOT, timed } from "./_harness.ts";
import type { Mode, Options, Runtime } from "./_options.ts";

/** The work tree. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The tag every output is saved as. */
export const TAG = "bench/x:1";
const SNAPSHOT = join(ROOT, "snapshot");
let dir = REPO;

/** Where the CLI runs from: the snapshot, or the work tree with `live`. */
export function cliDir(): string {
  return dir;
}

/** The command line that runs our CLI on `runtime` (in `cliDir()`). */
export function runtimeArgv(runtime: Runtime): string[] {
  switch (runtime) {
    case "node":
      // The npm bin as npm users run it: its shebang caps V8's young
      // generation (--max-semi-space-size=1) and exposes gc (--expose-gc).
      return [join(REPO, "dist/bin/docker-save.js")];
    case "node-tsx":
      return [process.execPath, "--import", "tsx", "src/cli.ts"];
    case "deno":
      // Plain, as a user runs it from JSR: no V8 flags (`deno task cli`
      // adds --max-semi-space-size=1; the memory target is without it).
      return [join(REPO, "node_modules/.bin/deno"), "run", "-A", "src/cli.ts"];
    case "deno-capped":
      return [
        join(REPO, "node_modules/.bin/deno"),
        "run",
        "--v8-flags=--max-semi-space-size=1",
        "-A",
        "src/cli.ts",
      ];
    case "bun":
      return [join(REPO, "node_modules/.bin/bun"), "src/cli.ts"];
  }
}

/** Our CLI on `runtime` saving `source` to OUT_TAR with `mode` layers. */
export function saveArgv(
  runtime: Runtime,
  mode: Mode,
  source: string,
): string[] {
  return [...runtimeArgv(runtime), "-o", OUT_TAR, "--layers", mode, source];
}

// The npm build of the work tree (what `node` runs).
function buildDist(): void {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "scripts/build.ts"],
    {
      cwd: REPO,
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  if (r.status !== 0) throw new Error("npm run build failed");
}

/** sha256 over the snapshot's file names and contents, short. */
function treeHash(root: string): string {
  const hash = createHash("sha256");
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = join(rel, name);
      if (name === "node_modules" || name === "deno.lock") continue;
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else hash.update(`${path}\0`).update(readFileSync(join(root, path)));
    }
  };
  walk("");
  return hash.digest("hex").slice(0, 12);
}

function takeSnapshot(): void {
  rmSync(SNAPSHOT, { recursive: true, force: true });
  mkdirSync(SNAPSHOT, { recursive: true });
  for (const name of ["mod.ts", "src", "package.json", "deno.json"]) {
    if (existsSync(join(REPO, name))) {
      cpSync(join(REPO, name), join(SNAPSHOT, name), { recursive: true });
    }
  }
  symlinkSync(join(REPO, "node_modules"), join(SNAPSHOT, "node_modules"));
}

/**
 * Takes (with `live`, just uses) the sources the CLI runs from, and checks
 * them: every runtime saves a 1 MiB image in every mode. Retakes the
 * snapshot until it passes, since others may be editing src/ meanwhile.
 * Resolves with a line naming the sources.
 */
export async function prepareSources(options: Options): Promise<string> {
  const check = await ensureFixture(1);
  const source = `oci:${check.dir}:${FIXTURE_REF}=${TAG}`;
  for (let attempt = 1;; attempt++) {
    if (options.live) dir = REPO;
    else {
      takeSnapshot();
      dir = SNAPSHOT;
    }
    if (options.runtimes.includes("node")) buildDist();
    const failures: string[] = [];
    for (const runtime of options.runtimes) {
      for (const mode of options.modes) {
        cleanOutputs();
        const r = timed(saveArgv(runtime, mode, source), {
          cwd: dir,
          outputPath: OUT_TAR,
        });
        cleanOutputs();
        if (!r.ok) failures.push(`${runtime} ${mode}: ${r.error}`);
      }
    }
    const id = options.live
      ? "the work tree (live)"
      : `snapshot of the work tree (src tree sha256 ${treeHash(SNAPSHOT)})`;
    if (failures.length === 0) {
      log(`sources: ${id}: 1 MiB check passed on every runtime and mode`);
      return id;
    }
    log(
      `sources: ${id}: check failed (attempt ${attempt}): ${
        failures.join("; ")
      }`,
    );
    if (options.live || attempt >= 15) {
      log("sources: giving up; benchmarking them as they are");
      return `${id} — FAILED its 1 MiB check: ${failures.join("; ")}`;
    }
    await new Promise((r) => setTimeout(r, 20_000));
  }
}
