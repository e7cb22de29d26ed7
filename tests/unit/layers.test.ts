/**
 * Stage 4 (`src/save/layers.ts`) on its own: planned members in, sized
 * members out, for each layer mode and size strategy, checked against the
 * bytes the test built (the layer tar, its gzip, their lengths and digests).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { fromMemory } from "../../mod.ts";
import type { LayerSizes, PlannedEntry } from "../../src/save/entries.ts";
import {
  LayerResolver,
  type SizedMember,
  type SizeStrategy,
  type UnsizedMember,
} from "../../src/save/layers.ts";
import { resolveOptions, type SaveOptions } from "../../src/save/options.ts";
import type { ProgressUpdate } from "../../src/save/progress.ts";
import { readAll } from "../_kit/bytes.ts";
import { digestOf } from "../_kit/digest.ts";
import { makeParts } from "../_kit/images.ts";
import { layerTar } from "../_kit/tar.ts";

/** A one-layer image, its layer gzipped or plain, and its planned member. */
async function oneLayer(gzip: boolean, blobOverride?: Uint8Array) {
  const tar = await layerTar({ "hello.txt": "hello, layers\n" });
  const parts = makeParts({ layers: [tar], gzip });
  const layer = parts.manifest.layers[0];
  const blob = parts.blobs.get(layer.digest)!;
  if (blobOverride) parts.blobs.set(layer.digest, blobOverride);
  const image = fromMemory(parts);
  const entry: PlannedEntry = {
    name: "blobs/layer",
    image,
    layer,
    diffId: digestOf(tar),
  };
  return { tar, blob, layer, entry };
}

async function resolveAll(
  planned: PlannedEntry[],
  options: SaveOptions,
  strategy: SizeStrategy,
): Promise<(SizedMember | UnsizedMember | undefined)[]> {
  const resolver = new LayerResolver(resolveOptions(options), strategy);
  const members: (SizedMember | UnsizedMember | undefined)[] = [];
  for await (const member of resolver.members(planned)) members.push(member);
  return members;
}

test("LayerResolver: compressed layers are the blob as stored, sized by the descriptor, from any offset", async () => {
  const { blob, entry } = await oneLayer(true);
  const [member] = await resolveAll([entry], { layers: "compressed" }, "known");
  const sized = member as SizedMember;
  assert.equal(sized.size, blob.byteLength);
  assert.deepEqual(await readAll(await sized.open(0)), blob);
  assert.deepEqual(await readAll(await sized.open(10)), blob.subarray(10));
});

test("LayerResolver: a gzip layer in uncompressed mode is counted first (count), unknown (known) or deferred (defer)", async () => {
  const { tar, entry } = await oneLayer(true);
  const [counted] = await resolveAll([entry], {}, "count");
  assert.equal(counted?.size, tar.byteLength);
  assert.deepEqual(await readAll(await (counted as SizedMember).open(0)), tar);

  const [known] = await resolveAll([entry], {}, "known");
  assert.equal(known, undefined);

  // Deferred: written once, then settled; a later member of the same layer
  // is sized from what was learnt, without a read.
  const resolver = new LayerResolver(resolveOptions({}), "defer");
  const members = resolver.members([entry, { ...entry, name: "again" }]);
  const first = (await members.next()).value as UnsizedMember;
  assert.equal(first.size, undefined);
  const body = await readAll(await first.open());
  assert.deepEqual(body, tar);
  first.settle(body.byteLength);
  const second = (await members.next()).value as SizedMember;
  assert.equal(second.name, "again");
  assert.equal(second.size, tar.byteLength);
});

test("LayerResolver: a plain tar blob is its own uncompressed size, known without a read", async () => {
  const { tar, entry } = await oneLayer(false);
  const [member] = await resolveAll([entry], {}, "known");
  assert.equal(member?.size, tar.byteLength);
  assert.deepEqual(await readAll(await (member as SizedMember).open(0)), tar);
  assert.deepEqual(
    await readAll(await (member as SizedMember).open(512)),
    tar.subarray(512),
  );
});

test("LayerResolver: a substituted blob fails DIGEST_MISMATCH; a wrong diff_id fails DIFF_ID_MISMATCH; verify: false lets them through", async () => {
  const { blob } = await oneLayer(true);
  const other = blob.slice();
  other[other.byteLength - 9] ^= 1; // the gzip trailer's CRC: still gzip
  const substituted = await oneLayer(true, other);
  const [member] = await resolveAll(
    [substituted.entry],
    { layers: "compressed" },
    "known",
  );
  await assert.rejects(readAll(await (member as SizedMember).open(0)), {
    name: "DockerSaveError",
    code: "DIGEST_MISMATCH",
  });
  const [unchecked] = await resolveAll(
    [substituted.entry],
    { layers: "compressed", verify: false },
    "known",
  );
  assert.deepEqual(
    await readAll(await (unchecked as SizedMember).open(0)),
    other,
  );

  const plain = await oneLayer(false);
  const wrongDiffId = { ...plain.entry, diffId: digestOf("another layer") };
  const [wrong] = await resolveAll([wrongDiffId], {}, "known");
  await assert.rejects(readAll(await (wrong as SizedMember).open(0)), {
    name: "DockerSaveError",
    code: "DIFF_ID_MISMATCH",
  });
});

test("LayerResolver: bytes pass through, deferred members are built from the sizes learnt, undefined ones skipped", async () => {
  const { tar, entry } = await oneLayer(true);
  const seen: number[] = [];
  const planned: PlannedEntry[] = [
    { name: "first", size: 3, body: new Uint8Array([1, 2, 3]) },
    entry,
    {
      build: (sizes: LayerSizes) => {
        seen.push(sizes.get(entry.layer, entry.diffId)!);
        return Promise.resolve({
          name: "built",
          size: 1,
          body: new Uint8Array([9]),
        });
      },
    },
    { build: () => Promise.resolve(undefined) },
  ];
  const members = await resolveAll(planned, {}, "count");
  assert.deepEqual(members.map((m) => m?.name), [
    "first",
    "blobs/layer",
    "built",
  ]);
  assert.deepEqual(seen, [tar.byteLength]);
  assert.deepEqual((members[2] as SizedMember).bytes, new Uint8Array([9]));
});

test("LayerResolver: onProgress is told of the counting pass and the write", async () => {
  const { tar, blob, entry } = await oneLayer(true);
  const updates: ProgressUpdate[] = [];
  const [member] = await resolveAll(
    [entry],
    { onProgress: (update) => updates.push(update) },
    "count",
  );
  await readAll(await (member as SizedMember).open(0));
  const done = updates.filter((update) => update.state === "done");
  assert.deepEqual(
    done.map(({ phase, complete, total }) => ({ phase, complete, total })),
    [
      { phase: "counting", complete: blob.byteLength, total: blob.byteLength },
      { phase: "writing", complete: tar.byteLength, total: tar.byteLength },
    ],
  );
});
