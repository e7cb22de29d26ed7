/**
 * Layers fetched side by side (`concurrency`): the same bytes as one layer
 * at a time — golden tarballs and generated images, streamed and written to
 * a file —, a bad blob still errors the output, and cancelling cancels every
 * layer being fetched.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { DockerSaveError, save, saveToFile } from "../../mod.ts";
import type { SaveOptions } from "../../mod.ts";
import { readAll } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import {
  flipByteAt,
  gzipLayer,
  type ImageStats,
  type LayerSpec,
  MiB,
  plainLayer,
  testImage,
} from "../_kit/generated.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { sleep } from "../_kit/time.ts";

const FORMATS = ["docker", "oci", "docker+oci"] as const;
const MODES = ["uncompressed", "compressed"] as const;
const TAG = "registry.example.com/side-by-side:v1";

for (const golden of goldenCases()) {
  test(`save() and saveToFile() give the same bytes with layers side by side: golden "${golden.name}"`, async () => {
    await withTemp("concurrency-", async (dir) => {
      for (const format of FORMATS) {
        for (const layers of MODES) {
          const one: SaveOptions = { format, layers, concurrency: 1 };
          const sequential = await readAll(
            save(await goldenEntries(golden), one),
          );
          if (format === "docker" && layers === "uncompressed") {
            assert.ok(
              Buffer.from(sequential).equals(Buffer.from(golden.expected)),
            );
          }
          for (const concurrency of [2, 3, 8]) {
            const options = { format, layers, concurrency };
            const what = `${format}, ${layers}, concurrency ${concurrency}`;
            const streamed = await readAll(
              save(await goldenEntries(golden), options),
            );
            assert.ok(
              Buffer.from(streamed).equals(Buffer.from(sequential)),
              what,
            );
            const path = `${dir}/${format}-${layers}-${concurrency}.tar`;
            await saveToFile(path, await goldenEntries(golden), options);
            assert.ok(
              Buffer.from(readFileSync(path)).equals(Buffer.from(sequential)),
              `${what} (file)`,
            );
          }
        }
      }
    });
  });
}

// Five layers: gzip with the uncompressed size known or not, and plain.
async function fiveLayers(tamper?: LayerSpec["tamper"]): Promise<LayerSpec[]> {
  return [
    { layer: await gzipLayer(MiB + 100, 11), uncompressedSize: "known" },
    { layer: await plainLayer(2 * MiB, 12) },
    {
      layer: await gzipLayer(3 * MiB + 7, 13),
      uncompressedSize: "known",
      tamper,
    },
    { layer: await gzipLayer(MiB / 2, 14) },
    { layer: await gzipLayer(2 * MiB + 512, 15), uncompressedSize: "known" },
  ];
}

test("save() and saveToFile() give the same bytes for five layers, one at a time or side by side", async () => {
  const specs = await fiveLayers();
  await withTemp("concurrency-", async (dir) => {
    for (const layers of MODES) {
      const sequential = await readAll(
        save([[TAG, testImage(specs).image]], { layers, concurrency: 1 }),
      );
      for (const concurrency of [2, 3, 5]) {
        const options: SaveOptions = { layers, concurrency };
        const what = `${layers}, concurrency ${concurrency}`;
        const streamed = await readAll(
          save([[TAG, testImage(specs).image]], options),
        );
        assert.ok(Buffer.from(streamed).equals(Buffer.from(sequential)), what);
        const path = `${dir}/${layers}-${concurrency}.tar`;
        await saveToFile(path, [[TAG, testImage(specs).image]], options);
        assert.ok(
          Buffer.from(readFileSync(path)).equals(Buffer.from(sequential)),
          `${what} (file)`,
        );
      }
    }
  });
});

// Every stream opened was read to its end or cancelled (a moment after the
// output stopped: cancellation propagates asynchronously), but `except`.
async function assertAllClosed(
  stats: ImageStats,
  what: string,
  except?: string,
) {
  await sleep(100);
  assert.ok(stats.streams.length > 0, `${what}: nothing was opened`);
  for (const stream of stats.streams) {
    if (stream.digest === except) continue;
    assert.ok(
      stream.done || stream.cancels.length > 0,
      `${what}: the stream of ${stream.digest} is still open`,
    );
  }
}

test("a bad blob among layers fetched side by side errors the stream and leaves no file", async () => {
  const specs = await fiveLayers(flipByteAt(2 * MiB));
  // The bad layer's own source: on Bun it stays open when gunzip fails in
  // uncompressed mode, one layer at a time as well (its pipe does not cancel
  // it); the layers fetched ahead of it are what this test is about.
  const bad = specs[2].layer.digest;
  await withTemp("concurrency-", async (dir) => {
    for (const layers of MODES) {
      const streamed = testImage(specs);
      await assert.rejects(
        readAll(save([[TAG, streamed.image]], { layers, concurrency: 3 })),
        (error) =>
          error instanceof DockerSaveError &&
          ["DIGEST_MISMATCH", "BAD_LAYER"].includes(error.code),
        layers,
      );
      await assertAllClosed(streamed.stats, `${layers}, stream`, bad);
      const filed = testImage(specs);
      const path = `${dir}/${layers}.tar`;
      await assert.rejects(
        saveToFile(path, [[TAG, filed.image]], { layers, concurrency: 3 }),
        (error) =>
          error instanceof DockerSaveError &&
          ["DIGEST_MISMATCH", "BAD_LAYER"].includes(error.code),
        `${layers} (file)`,
      );
      await assertAllClosed(filed.stats, `${layers}, file`, bad);
      assert.ok(!existsSync(path));
    }
    assert.deepEqual(readdirSync(dir), []);
  });
});

test("cancelling save() cancels every layer being fetched side by side", async () => {
  const specs = await fiveLayers();
  for (const layers of MODES) {
    const { image, stats } = testImage(specs);
    const reader = save([[TAG, image]], { layers, concurrency: 3 })
      .getReader();
    let received = 0;
    while (received < 2 * MiB) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
    }
    await sleep(50); // the layers after it start downloading
    const opened = stats.streams.length;
    await reader.cancel(new Error("stop"));
    await assertAllClosed(stats, layers);
    assert.ok(opened >= 2, `${layers}: only ${opened} layer(s) were open`);
  }
});
