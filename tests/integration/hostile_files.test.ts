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
import { readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { concat, readAll } from "../_kit/bytes.ts";
import { tempCopy, withTemp } from "../_kit/cleanup.ts";
import type { ChildOutcome } from "../_kit/hostile_child.ts";
import { BASIC_DIR } from "../_kit/images.ts";
import { countingFs, layoutFiles } from "../_kit/layout.ts";
import { type BoundedRun, runBounded } from "../_kit/processes.ts";
import { layerTar, readTar } from "../_kit/tar.ts";
import {
  paxRecord,
  TAR_END,
  tarHeader,
  tarRecord,
} from "../_kit/tar_records.ts";
import { buildImage } from "../../mod.ts";
import { nodeFileSystem } from "../../src/runtime/fs.ts";
import { fromDockerArchive } from "../../src/sources/archive/docker_archive.ts";
import {
  indexArchive,
  MAX_REGUNZIP_FACTOR,
} from "../../src/sources/archive/archive_index.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { save } from "../../src/save/save.ts";

const CHILD = new URL("../_kit/hostile_child.ts", import.meta.url).pathname;
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

// ------------------------------------- 3: blobs that link out of a layout

/** Where golden basic's first layer blob starts in its compressed save. */
async function layerOffset(): Promise<number> {
  const tar = await readAll(
    save([["hostile/app:v1", await fromOciLayout(LAYOUT)]], {
      layers: "compressed",
    }),
  );
  const blob = readFileSync(join(LAYOUT, LAYER));
  const at = Buffer.from(tar).indexOf(blob);
  assert.ok(at > 0);
  return at;
}

const MARK = "TOKEN-sekrit-19-3";

for (
  const [what, target, env] of [
    ["a file outside it", "secret", {}],
    ["/proc/self/environ", "/proc/self/environ", { HOSTILE_TOKEN: MARK }],
  ] as const
) {
  test(`saveResponse() of a layout whose layer blob links to ${what} serves none of it`, async () => {
    const from = await layerOffset() + 1;
    const copy = tempCopy(LAYOUT);
    try {
      const secret = join(copy.path, "..", "secret");
      // As long as the blob it stands for, and then some.
      writeFileSync(secret, `${MARK}\n`.repeat(64));
      rmSync(join(copy.path, LAYER));
      symlinkSync(
        target === "secret" ? secret : target,
        join(copy.path, LAYER),
      );
      const outcome = outcomeOf(
        await runBounded(CHILD, ["range", copy.path, String(from), MARK], {
          ...BOUNDS,
          env,
        }),
      );
      assert.equal(outcome.leaked, false, `served: ${JSON.stringify(outcome)}`);
      assert.equal(outcome.outcome, "error", JSON.stringify(outcome));
      assert.equal(outcome.code, "BAD_LAYOUT", outcome.message);
      assert.match(outcome.message!, /is outside/);
    } finally {
      copy.dispose();
    }
  });
}

/**
 * Saves a copy of the layout whose first layer blob is a symlink `link` to
 * a copy of the blob's bytes at `file` (given the copy's path).
 */
async function saveLinkedLayout(
  file: (layout: string) => string,
  link: (layout: string) => string,
): Promise<ChildOutcome> {
  const copy = tempCopy(LAYOUT);
  try {
    execFileSync("mkdir", ["-p", join(file(copy.path), "..")]);
    writeFileSync(file(copy.path), readFileSync(join(LAYOUT, LAYER)));
    rmSync(join(copy.path, LAYER));
    symlinkSync(link(copy.path), join(copy.path, LAYER));
    return outcomeOf(await runBounded(CHILD, ["layout", copy.path], BOUNDS));
  } finally {
    copy.dispose();
  }
}

test("save() of a layout whose layer blob links outside it fails with BAD_LAYOUT", async () => {
  const outside = (layout: string) => join(layout, "..", "layer");
  const outcome = await saveLinkedLayout(outside, outside);
  assert.equal(outcome.code, "BAD_LAYOUT", outcome.message);
});

test("save() of a layout follows a blob's symlink to a file inside the layout", async () => {
  const outcome = await saveLinkedLayout(
    (layout) => join(layout, "kept", "layer"),
    () => "../../kept/layer",
  );
  assert.equal(outcome.outcome, "saved", outcome.message);
});

// ------------------------------------------- 1: tar name records, bounded

const encoder = new TextEncoder();
/** `count` empty members named `${prefix}N`, gzipped once. */
function tinyMembers(count: number, prefix = "t/"): Uint8Array {
  return gzipSync(
    concat(
      Array.from({ length: count }, (_, i) => tarHeader(`${prefix}${i}`, 0)),
    ),
  );
}

/** Members as plain records (for a real image after hostile records). */
function members(files: [string, Uint8Array][]): Uint8Array {
  return concat(files.map(([name, data]) => tarRecord(name, data)));
}

const END = TAR_END;
const ARCHIVE_BOUNDS = { timeoutMs: 30_000, maxRssMiB: 640 };

async function basicMembers(): Promise<[string, Uint8Array][]> {
  const [basic] = (await import("../_kit/golden.ts")).goldenCases().filter((
    c,
  ) => c.name === "basic");
  return (await readTar(basic.expected)).map((m) => [m.name, m.data]);
}

/** Runs the child on an archive of gzip members; its outcome. */
async function archiveOutcome(
  kind: "docker-archive" | "oci-archive",
  parts: Uint8Array[],
): Promise<ChildOutcome> {
  return await withTemp("docker-save-hostile-", async (dir) => {
    const path = join(dir, "hostile.tar.gz");
    writeFileSync(path, concat(parts));
    return outcomeOf(await runBounded(CHILD, [kind, path], ARCHIVE_BOUNDS));
  });
}

test("fromDockerArchive() never applies a PAX global path to later members", async () => {
  // 512 KiB of "a/", within the 1 MiB record bound, before 3000 members and
  // a real image: every member keeps its own name.
  const global = tarRecord(
    "pax_global_header",
    paxRecord("path", "a/".repeat(256 * 1024)),
    "g",
  );
  const outcome = await archiveOutcome("docker-archive", [
    gzipSync(global),
    tinyMembers(3000),
    gzipSync(concat([members(await basicMembers()), END])),
  ]);
  assert.equal(outcome.outcome, "saved", outcome.message);
});

test("fromOciArchive() refuses a PAX global record over 1 MiB with ARCHIVE_LIMIT", async () => {
  const global = tarRecord(
    "pax_global_header",
    paxRecord("path", "a/".repeat(2 * 1024 * 1024)),
    "g",
  );
  const outcome = await archiveOutcome("oci-archive", [
    gzipSync(global),
    tinyMembers(1000),
    gzipSync(concat([members(layoutFiles(LAYOUT)), END])),
  ]);
  assert.equal(outcome.code, "ARCHIVE_LIMIT", outcome.message);
  assert.match(outcome.message!, /PAX record .* more than the 1048576 allowed/);
});

test("fromDockerArchive() refuses GNU long names over 1 MiB with ARCHIVE_LIMIT", async () => {
  // 200 names of 8 MiB (each gzipped to a few KB): 1.6 GiB if kept.
  const one = gzipSync(concat([
    tarRecord(
      "././@LongLink",
      encoder.encode("a/".repeat(4 * 1024 * 1024)),
      "L",
    ),
    tarHeader("x", 0),
  ]));
  const outcome = await archiveOutcome(
    "docker-archive",
    Array.from({ length: 200 }, () => one),
  );
  assert.equal(outcome.code, "ARCHIVE_LIMIT", outcome.message);
  assert.match(
    outcome.message!,
    /GNU long-name record .* more than the 1048576 allowed/,
  );
});

test("fromDockerArchive() refuses a name over 4096 characters with ARCHIVE_LIMIT", async () => {
  const outcome = await archiveOutcome("docker-archive", [gzipSync(concat([
    tarRecord("././@LongLink", encoder.encode("n".repeat(5000)), "L"),
    tarHeader("x", 0),
    END,
  ]))]);
  assert.equal(outcome.code, "ARCHIVE_LIMIT", outcome.message);
  assert.match(
    outcome.message!,
    /a name or link of 5000 characters, more than the 4096 allowed/,
  );
});

test("fromDockerArchive() keeps at most 16 Mi characters of names per archive", async () => {
  // 5000 names of 4000 characters: 20 M in all.
  const one = gzipSync(concat(Array.from({ length: 500 }, (_, i) =>
    concat([
      tarRecord("././@LongLink", encoder.encode(`${i}`.padEnd(4000, "n")), "L"),
      tarHeader("x", 0),
    ]))));
  const outcome = await archiveOutcome(
    "docker-archive",
    Array.from({ length: 10 }, () => one),
  );
  assert.equal(outcome.code, "ARCHIVE_LIMIT", outcome.message);
  assert.match(
    outcome.message!,
    /names have more than 16777216 characters in all/,
  );
});

test("fromDockerArchive() keeps at most 100,000 members per archive", async () => {
  const thousand = tinyMembers(1000);
  const outcome = await archiveOutcome(
    "docker-archive",
    Array.from({ length: 101 }, () => thousand),
  );
  assert.equal(outcome.code, "ARCHIVE_LIMIT", outcome.message);
  assert.match(outcome.message!, /more than 100000 members/);
});

// --------------------------- 8: a gzip archive is gunzipped once, bounded

/**
 * A gzipped docker archive: a run of `fillerMiB` MiB of zeros no image
 * needs, then an image of `layers` layers (its tar as `save()` writes it).
 */
async function paddedArchive(layers: number, fillerMiB = 64): Promise<{
  gz: Uint8Array;
  tar: Uint8Array;
}> {
  const image = await buildImage({
    layers: await Promise.all(
      Array.from(
        { length: layers },
        (_, i) => layerTar({ [`f${i}`]: `${i}\n` }),
      ),
    ),
    config: { architecture: "amd64", os: "linux" },
  });
  const tar = await readAll(save([["hostile/app:v1", image]]));
  const filler = tarRecord("filler", new Uint8Array(fillerMiB * 1024 * 1024));
  return { gz: gzipSync(concat([filler, tar]), { level: 1 }), tar };
}

test("fromDockerArchive() reads a gzip archive once, however many layers it has", async () => {
  const { gz, tar } = await paddedArchive(12);
  await withTemp("docker-save-hostile-", async (dir) => {
    const path = join(dir, "padded.tar.gz");
    writeFileSync(path, gz);
    const { fs, count } = countingFs((await nodeFileSystem())!);
    const image = await fromDockerArchive(path, undefined, { fs });
    const again = await readAll(save([["hostile/app:v1", image]]));
    assert.ok(Buffer.from(again).equals(Buffer.from(tar)), "same tarball");
    // Today each of the 12 layers gunzipped the file again from its start.
    assert.equal(count.reads, 1, `${count.reads} opens of the archive`);
    assert.equal(count.bytes, gz.byteLength);
  });
});

test("ArchiveIndex without a spool gunzips at most MAX_REGUNZIP_FACTOR times the tar", async () => {
  const { gz } = await paddedArchive(1, 4);
  await withTemp("docker-save-hostile-", async (dir) => {
    const path = join(dir, "padded.tar.gz");
    writeFileSync(path, gz);
    const index = await indexArchive(path, { spool: false });
    // The last member read from the archive (not kept in memory).
    const last = index.members.filter((m) => !m.data && m.size > 0).at(-1)!;
    for (let i = 0; i < MAX_REGUNZIP_FACTOR; i++) {
      await readAll(await index.open(last));
    }
    await assert.rejects(index.open(last), {
      name: "DockerSaveError",
      code: "ARCHIVE_LIMIT",
      message: new RegExp(
        `^Cannot read "${last.name}" of archive "${path}": reading its members would gunzip more than ${MAX_REGUNZIP_FACTOR} times its \\d+ bytes; gunzip it first$`,
      ),
    });
  });
});
