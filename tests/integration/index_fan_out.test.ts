/**
 * An index that lists the next index K times, three levels deep (issue 19,
 * defect 2): 64³ paths to one manifest, a few dozen KB of blobs. Saved whole
 * — `save()` of `fromOciLayoutIndex` or `fromRegistryIndex`, and the CLI's
 * `--platform all` with its progress view — each blob is read once and
 * stored once, so the work is the blobs' size, not the paths' count.
 *
 * Each walk is bounded by the test itself: reads and `child()` calls are
 * counted and fail past a limit, the CLI is killed after a deadline, so a
 * walk that follows every path fails the test instead of hanging it.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  fromOciLayoutIndex,
  fromRegistryIndex,
  type ImageIndex,
  isImageIndex,
  save,
} from "../../mod.ts";
import { nodeFileSystem } from "../../src/runtime/fs.ts";
import { readAll } from "../_kit/bytes.ts";
import { Cleanup, withTemp } from "../_kit/cleanup.ts";
import { startFakeRegistry } from "../_kit/fake_registry.ts";
import { MEDIA } from "../_kit/format.ts";
import { goldenCases } from "../_kit/golden.ts";
import {
  addBlob,
  countingFs,
  type LayoutFiles,
  layoutFiles,
  type TestDescriptor,
  writeLayout,
} from "../_kit/layout.ts";
import { runCli } from "../_kit/processes.ts";
import { readTar, type TarMember } from "../_kit/tar.ts";

const encoder = new TextEncoder();
const FAN_OUT = 64;
const LEVELS = 3;
/** A generous bound: the whole save takes well under a second. */
const DEADLINE = 20_000;
const AMD64 = { os: "linux", architecture: "amd64" };

const basic = goldenCases().find((golden) => golden.name === "basic")!;

/**
 * Golden basic's layout with its manifest below `LEVELS` indexes, each
 * listing the next `FAN_OUT` times; index.json names the top one.
 */
function fanOutLayout(): { files: LayoutFiles; top: TestDescriptor } {
  const files: LayoutFiles = new Map(layoutFiles(`${basic.dir}/oci`));
  const index = JSON.parse(
    readFileSync(`${basic.dir}/oci/index.json`, "utf8"),
  );
  let next: TestDescriptor = {
    ...index.manifests[0],
    annotations: undefined,
    platform: AMD64,
  };
  for (let level = 0; level < LEVELS; level++) {
    next = addBlob(files, MEDIA.ociIndex, {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: Array(FAN_OUT).fill(next),
    });
  }
  files.set(
    "index.json",
    encoder.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [next],
    })),
  );
  return { files, top: next };
}

/**
 * The independent expectation: an `oci` tarball with compressed layers
 * holds every blob of the layout once, byte for byte (nothing changes, so
 * every manifest and index keeps its digest), and index.json names the top
 * index.
 */
function assertEachBlobOnce(
  members: TarMember[],
  files: LayoutFiles,
  top: TestDescriptor,
): void {
  const names = members.map((member) => member.name);
  assert.equal(new Set(names).size, names.length, "a member written twice");
  const blobs = [...files.keys()].filter((name) => name.startsWith("blobs/"));
  assert.deepEqual(
    names.filter((name) => name.startsWith("blobs/")).sort(),
    blobs.sort(),
  );
  for (const member of members) {
    if (!member.name.startsWith("blobs/")) continue;
    assert.deepEqual(member.data, files.get(member.name), member.name);
  }
  const indexJson = members.find((member) => member.name === "index.json")!;
  const written = JSON.parse(new TextDecoder().decode(indexJson.data));
  assert.equal(written.manifests.length, 1);
  assert.equal(written.manifests[0].digest, top.digest);
}

/** `promise`, or a failure once `ms` have passed. */
async function within<T>(ms: number, what: string, promise: Promise<T>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} still running after ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The index with every `child()` call (nested ones too) counted; past
 * `limit` calls it throws, so a walk of every path fails fast.
 */
function countingIndex(
  index: ImageIndex,
  limit: number,
): { index: ImageIndex; calls: { count: number } } {
  const calls = { count: 0 };
  const wrap = (inner: ImageIndex): ImageIndex => ({
    rawIndex: () => inner.rawIndex(),
    index: () => inner.index(),
    child: async (entry) => {
      if (++calls.count > limit) {
        throw new Error(`more than ${limit} child() calls: every path walked`);
      }
      const child = await inner.child(entry);
      return child && isImageIndex(child) ? wrap(child) : child;
    },
  });
  return { index: wrap(index), calls };
}

test("save() of fromOciLayoutIndex() over a 64^3 index fan-out reads and stores each blob once", async () => {
  const { files, top } = fanOutLayout();
  await withTemp("docker-save-fan-out-", async (dir) => {
    const layout = join(dir, "layout");
    writeLayout(layout, files);
    const { fs, count } = countingFs((await nodeFileSystem())!, 200);
    const tar = await within(
      DEADLINE,
      "the save",
      (async () => {
        const index = await fromOciLayoutIndex(layout, undefined, { fs });
        return await readAll(
          save([["app:v1", index]], { format: "oci", layers: "compressed" }),
        );
      })(),
    );
    assertEachBlobOnce(await readTar(tar), files, top);
    // Each blob read at most twice: once to check it, once to write it.
    const blobs = [...files.keys()].filter((name) => name.startsWith("blobs/"));
    assert.ok(
      count.reads <= 2 * blobs.length + 2,
      `${count.reads} reads of ${blobs.length} blobs`,
    );
  });
});

test("save() of fromRegistryIndex() over a 64^3 index fan-out pulls and stores each blob once", async () => {
  const { files, top } = fanOutLayout();
  const cleanup = new Cleanup();
  try {
    const manifests: Record<string, { mediaType: string; body: Uint8Array }> =
      {};
    const blobs: Record<string, Uint8Array> = {};
    for (const [name, body] of files) {
      if (!name.startsWith("blobs/sha256/")) continue;
      const digest = `sha256:${name.slice("blobs/sha256/".length)}`;
      blobs[digest] = body;
      let mediaType: unknown;
      try {
        mediaType = JSON.parse(new TextDecoder().decode(body)).mediaType;
      } catch {
        continue; // a layer
      }
      if (typeof mediaType === "string") {
        manifests[digest] = { mediaType, body };
        if (digest === top.digest) manifests.v1 = manifests[digest];
      }
    }
    const registry = await startFakeRegistry(cleanup, {
      repository: "t/app",
      manifests,
      blobs,
    });
    const pulled = await fromRegistryIndex(`${registry.host}/t/app:v1`);
    assert.ok(isImageIndex(pulled));
    const { index, calls } = countingIndex(pulled, 1000);
    const tar = await within(
      DEADLINE,
      "the save",
      readAll(save([["app:v1", index]], {
        format: "oci",
        layers: "compressed",
      })),
    );
    assertEachBlobOnce(await readTar(tar), files, top);
    // One child() per distinct entry of each distinct index.
    assert.ok(calls.count <= LEVELS + 1, `${calls.count} child() calls`);
    const gets = registry.requests.filter((r) => r.method === "GET");
    const paths = gets.map((r) => r.path);
    assert.equal(new Set(paths).size, paths.length, `pulled twice: ${paths}`);
  } finally {
    await cleanup.close();
  }
});

test("cli --platform all with its progress view saves a 64^3 index fan-out with each blob once", async () => {
  const { files, top } = fanOutLayout();
  await withTemp("docker-save-fan-out-cli-", async (dir) => {
    const layout = join(dir, "layout");
    writeLayout(layout, files);
    const out = join(dir, "out.tar");
    const run = await runCli(
      [
        "--platform",
        "all",
        "--format",
        "oci",
        "--layers",
        "compressed",
        "-o",
        out,
        `oci:${layout}=app:v1`,
      ],
      {},
      { timeout: DEADLINE },
    );
    assert.equal(run.code, 0, run.stderr);
    assertEachBlobOnce(await readTar(readFileSync(out)), files, top);
    // The progress view names the layers once, not once per path.
    const lines = run.stderr.split("\n").filter((line) => line !== "");
    assert.ok(lines.length <= 10, run.stderr.slice(0, 2000));
  });
});
