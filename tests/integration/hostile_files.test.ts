/**
 * Hostile files (issue 19): layout files that are not regular files (FIFOs),
 * blobs that are symlinks out of their layout, archive name records that
 * blow up memory, and gzip archives that cost layers × bytes. Every case
 * runs in a child process bounded in time and memory (`runBounded`), so a
 * regression fails the test instead of hanging or exhausting the machine.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { type BoundedRun, runBounded } from "../_bounded.ts";
import type { ChildOutcome } from "../_hostile_child.ts";
import { BASIC_DIR, tempCopy } from "../_fixtures.ts";

const CHILD = new URL("../_hostile_child.ts", import.meta.url).pathname;
const CLI = new URL("../../src/cli.ts", import.meta.url).pathname;
const LAYOUT = `${BASIC_DIR}oci`;
/** The first layer blob of golden basic (276 bytes, gzip). */
const LAYER =
  "blobs/sha256/410960affa1245a684be7bad29df0e492ecb21b18ccefd27ea53ebdfab0a7e66";
const BOUNDS = { timeoutMs: 15_000, maxRssMiB: 768 };

/** The child's one JSON line, or a failure naming how the run ended. */
function outcomeOf(run: BoundedRun): ChildOutcome {
  assert.equal(
    run.killed,
    undefined,
    `killed (${run.killed}) after ${run.ms} ms at ${run.peakRssMiB} MiB; stderr: ${run.stderr}`,
  );
  const line = run.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(
      `no outcome (exit ${run.code}); stdout: ${run.stdout}; stderr: ${run.stderr}`,
    );
  }
}

function mkfifo(path: string): void {
  rmSync(path, { force: true });
  execFileSync("mkfifo", [path]);
}

// ------------------------------------------------ 4: files that are FIFOs

for (const file of ["oci-layout", "index.json", LAYER]) {
  const what = file === LAYER ? "a layer blob" : file;
  test(`fromOciLayout() refuses ${what} that is a FIFO at once, with BAD_LAYOUT`, async () => {
    const copy = tempCopy(LAYOUT);
    try {
      mkfifo(join(copy.path, file));
      const outcome = outcomeOf(
        await runBounded(CHILD, ["layout", copy.path], BOUNDS),
      );
      assert.equal(outcome.outcome, "error");
      assert.equal(outcome.code, "BAD_LAYOUT", outcome.message);
      assert.match(outcome.message!, /not a regular file/);
    } finally {
      copy.dispose();
    }
  });
}

test("fromOciLayout() of four layouts with a FIFO index.json leaves the file system usable", async () => {
  const copies = Array.from({ length: 4 }, () => tempCopy(LAYOUT));
  try {
    for (const copy of copies) mkfifo(join(copy.path, "index.json"));
    const outcome = outcomeOf(
      await runBounded(
        CHILD,
        ["layouts", ...copies.map((copy) => copy.path)],
        BOUNDS,
      ),
    );
    assert.equal(outcome.outcome, "saved", outcome.message);
    assert.deepEqual(
      outcome.results!.map((result) => result.code),
      ["BAD_LAYOUT", "BAD_LAYOUT", "BAD_LAYOUT", "BAD_LAYOUT"],
    );
  } finally {
    for (const copy of copies) copy.dispose();
  }
});

test("docker-save on a layout whose blob is a FIFO exits non-zero with one clear line", async () => {
  const copy = tempCopy(LAYOUT);
  try {
    mkfifo(join(copy.path, LAYER));
    const out = join(copy.path, "..", "out.tar");
    // SIGINT after 10 s: today the CLI hangs and, on Node, even ignores it.
    const run = await runBounded(CLI, [
      "-o",
      out,
      `oci:${copy.path}=hostile/app:v1`,
    ], {
      ...BOUNDS,
      signal: { afterMs: 10_000, name: "SIGINT" },
    });
    assert.equal(run.killed, undefined, `killed after ${run.ms} ms`);
    assert.ok(run.ms < 10_000, `ended after ${run.ms} ms, not at once`);
    assert.notEqual(run.code, 0);
    // Progress lines, then one error line, no stack.
    const errors = run.stderr.trim().split("\n").filter((line) =>
      !/ \[\d+\/\d+\]$/.test(line)
    );
    assert.equal(errors.length, 1, run.stderr);
    assert.match(
      errors[0],
      /^docker-save: .*: it is a FIFO, not a regular file$/,
    );
  } finally {
    copy.dispose();
  }
});
