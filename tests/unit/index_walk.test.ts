/**
 * The one index walk (`src/model/index_walk.ts`): one depth rule for every
 * source and for `save()` (four indexes on a path; a fifth is
 * `BAD_MANIFEST`), each child asked for once however many entries name it,
 * and the walk by platform.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  buildImage,
  buildIndex,
  type Image,
  type ImageIndex,
  save,
} from "../../mod.ts";
import {
  followPlatform,
  MAX_INDEX_DEPTH,
  type PlatformPath,
  walkIndex,
} from "../../src/model/index_walk.ts";
import type { Descriptor } from "../../src/model/image.ts";
import { readAll } from "../_kit/bytes.ts";
import { layerTar } from "../_kit/tar.ts";

const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64" };

async function imageFor(platform: typeof AMD64): Promise<Image> {
  return await buildImage({
    layers: [await layerTar({ "arch.txt": platform.architecture })],
    config: { os: platform.os, architecture: platform.architecture },
  });
}

/** `depth` indexes, each naming the next once; the last names `image`. */
async function nested(image: Image, depth: number): Promise<ImageIndex> {
  let index = await buildIndex([{ image, platform: AMD64 }]);
  for (let i = 1; i < depth; i++) {
    index = await buildIndex([{ image: index, platform: AMD64 }]);
  }
  return index;
}

/** The index with every `child()` call (nested ones too) counted. */
function counted(index: ImageIndex, calls: Map<string, number>): ImageIndex {
  return {
    rawIndex: () => index.rawIndex(),
    index: () => index.index(),
    child: async (entry) => {
      calls.set(entry.digest, (calls.get(entry.digest) ?? 0) + 1);
      const child = await index.child(entry);
      return child && "rawIndex" in child ? counted(child, calls) : child;
    },
  };
}

test(`save() follows ${MAX_INDEX_DEPTH} nested indexes and refuses one more with BAD_MANIFEST`, async () => {
  const image = await imageFor(AMD64);
  const options = { format: "oci", layers: "compressed" } as const;
  const tar = await readAll(
    save([["app:v1", await nested(image, MAX_INDEX_DEPTH)]], options),
  );
  assert.ok(tar.byteLength > 0);
  await assert.rejects(
    readAll(
      save([["app:v1", await nested(image, MAX_INDEX_DEPTH + 1)]], options),
    ),
    {
      name: "DockerSaveError",
      code: "BAD_MANIFEST",
      message:
        `Cannot read index of "app:v1": indexes nest deeper than ${MAX_INDEX_DEPTH}`,
    },
  );
});

test("walkIndex() asks for each child once, however many entries and paths name it", async () => {
  const amd = await imageFor(AMD64);
  const arm = await imageFor(ARM64);
  const inner = await buildIndex([
    { image: amd, platform: AMD64 },
    { image: arm, platform: ARM64 },
    { image: amd, platform: AMD64 },
  ]);
  const middle = await buildIndex(Array(8).fill({ image: inner }));
  const top = await buildIndex(Array(8).fill({ image: middle }));
  const calls = new Map<string, number>();
  const walked = await walkIndex(counted(top, calls), { what: "top" });
  // 8 * 8 * 3 paths; 4 distinct children, each asked for once.
  assert.equal(calls.size, 4);
  assert.deepEqual([...calls.values()], [1, 1, 1, 1]);
  // Entries naming one child share one object.
  const [first, second] = walked.entries;
  assert.equal(first.kind, "index");
  assert.equal(
    first.kind === "index" && first.index,
    second.kind === "index" && second.index,
  );
});

test("walkIndex() checks every entry's size against the child's bytes, read once", async () => {
  const amd = await imageFor(AMD64);
  const index = await buildIndex([{ image: amd, platform: AMD64 }]);
  const parsed = await index.index();
  const [entry] = parsed.manifests;
  const lying: ImageIndex = {
    rawIndex: () =>
      Promise.resolve(new TextEncoder().encode(JSON.stringify({
        ...parsed,
        manifests: [entry, { ...entry, size: entry.size + 1 }],
      }))),
    index: () => index.index(),
    child: (descriptor: Descriptor) => index.child(descriptor),
  };
  await assert.rejects(walkIndex(lying, { what: "the index" }), {
    name: "DockerSaveError",
    code: "SIZE_MISMATCH",
  });
});

/** A chain of in-memory indexes as `followPlatform` reads it. */
function pathOver(start: ImageIndex): PlatformPath<Image | ImageIndex> {
  // Each step reads from the index it stands on.
  let current = start;
  return {
    isIndex: (node) => "rawIndex" in node,
    entries: async (node) => (await (node as ImageIndex).index()).manifests,
    child: async (entry) => {
      const child = (await current.child(entry))!;
      if ("rawIndex" in child) current = child;
      return child;
    },
  };
}

test("followPlatform() walks a chain of indexes by platform, under the one depth rule", async () => {
  const amd = await imageFor(AMD64);
  const arm = await imageFor(ARM64);
  const pair = await buildIndex([
    { image: amd, platform: AMD64 },
    { image: arm, platform: ARM64 },
  ]);
  const top = await buildIndex([{ image: pair, platform: ARM64 }]);
  const { node, platform } = await followPlatform(
    top,
    "linux/arm64",
    "app",
    pathOver(top),
  );
  assert.equal(node, arm);
  assert.deepEqual(platform, ARM64);

  const tooDeep = await nested(amd, MAX_INDEX_DEPTH + 1);
  await assert.rejects(
    followPlatform(tooDeep, "linux/amd64", "app", pathOver(tooDeep)),
    {
      name: "DockerSaveError",
      code: "BAD_MANIFEST",
      message: `Cannot read app: indexes nest deeper than ${MAX_INDEX_DEPTH}`,
    },
  );
});
