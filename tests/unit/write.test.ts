/**
 * The writers of a plan (`src/save/write.ts`) on their own: the stream
 * (`writePlan`), the seekable file (`writePlanSeekable`) and the sizes up
 * front (`sizePlan`) give the same tarball; checked against a tar reader
 * (each member's name and bytes are the plan's) and against each other.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { fromMemory } from "../../mod.ts";
import { resolveOptions, type SaveOptions } from "../../src/save/options.ts";
import { planSave, type SavePlan } from "../../src/save/pipeline.ts";
import { tarSize } from "../../src/save/tar_writer.ts";
import {
  type SeekableSink,
  sizePlan,
  writePlan,
  writePlanSeekable,
} from "../../src/save/write.ts";
import { concat, readAll } from "../_kit/bytes.ts";
import { makeParts } from "../_kit/images.ts";
import { layerTar, readTar } from "../_kit/tar.ts";

async function planOf(gzip: boolean, options: SaveOptions) {
  const tar = await layerTar({ "a.txt": "written once\n" });
  const image = fromMemory(makeParts({ layers: [tar], gzip }));
  const settings = resolveOptions(options);
  return { tar, settings, plan: await planSave([["app:v1", image]], settings) };
}

/** A file in memory that can seek, recording how it was written. */
function memorySink(): SeekableSink & { bytes(): Uint8Array; patches: number } {
  let chunks: Uint8Array[] = [];
  const sink = {
    patches: 0,
    write: (bytes: Uint8Array) => {
      chunks.push(bytes.slice());
      return Promise.resolve();
    },
    writeAt: (position: number, bytes: Uint8Array) => {
      const whole = concat(chunks);
      whole.set(bytes, position);
      chunks = [whole];
      sink.patches++;
      return Promise.resolve();
    },
    truncate: (length: number) => {
      chunks = [concat(chunks).slice(0, length)];
      return Promise.resolve();
    },
    flush: () => Promise.resolve(),
    bytes: () => concat(chunks),
  };
  return sink;
}

function stream(plan: SavePlan, settings: ReturnType<typeof resolveOptions>) {
  return readAll(writePlan(() => Promise.resolve(plan), settings));
}

test("writePlan() writes each planned member, in order, with its bytes; the layer as its tar", async () => {
  const { tar, plan, settings } = await planOf(true, {});
  const members = await readTar(await stream(plan, settings));
  assert.deepEqual(
    members.map((member) => member.name),
    plan.entries.map((entry) => (entry as { name: string }).name),
  );
  const layer = members.find((member) => member.name.endsWith("/layer.tar"))!;
  assert.deepEqual(layer.data, tar);
});

test("sizePlan() knows every size with compressed layers, and they add up to writePlan()'s length", async () => {
  const { plan, settings } = await planOf(true, { layers: "compressed" });
  const members = await sizePlan(plan, settings);
  assert.ok(members);
  const out = await stream(plan, settings);
  assert.equal(tarSize(members), out.byteLength);
  const read = await readTar(out);
  assert.deepEqual(
    members.map(({ name, size }) => ({ name, size })),
    read.map(({ name, data }) => ({ name, size: data.byteLength })),
  );
});

test("sizePlan() is undefined when a gzip layer's uncompressed size needs a read", async () => {
  const { plan, settings } = await planOf(true, {});
  assert.equal(await sizePlan(plan, settings), undefined);
  const plain = await planOf(false, {});
  assert.ok(await sizePlan(plain.plan, plain.settings));
});

test("writePlanSeekable() gives writePlan()'s bytes, patching the header of a layer it sizes by writing it", async () => {
  for (const options of [{}, { layers: "compressed" }] as SaveOptions[]) {
    const { plan, settings } = await planOf(true, options);
    const sink = memorySink();
    await writePlanSeekable(plan, settings, sink);
    const expected = await stream(plan, settings);
    assert.deepEqual(sink.bytes(), expected, JSON.stringify(options));
    // Uncompressed: the gzip layer's size is learnt by writing it once.
    assert.equal(sink.patches, options.layers === "compressed" ? 0 : 1);
  }
});

test("writePlan() errors the stream when a layer body is not what the plan says", async () => {
  const { plan, settings } = await planOf(true, {});
  const layer = plan.entries.find((entry) => "layer" in entry) as {
    diffId: string;
  };
  layer.diffId = `sha256:${"0".repeat(64)}`;
  await assert.rejects(stream(plan, settings), {
    name: "DockerSaveError",
    code: "DIFF_ID_MISMATCH",
  });
});
