/**
 * saveToFile(): the same bytes as save(), each layer read once even where
 * its uncompressed size is not known up front (the header is reserved and
 * patched), and nothing left behind on failure.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { DockerSaveError, save, saveToFile } from "../mod.ts";
import type { SaveOptions } from "../mod.ts";
import { goldenCases, goldenEntries, readAll } from "./_golden.ts";
import { withTemp } from "./_fixtures.ts";
import { flipByteAt, gzipLayer, MiB, testImage } from "./_streams.ts";

const FORMATS = ["docker", "oci", "docker+oci"] as const;
const MODES = ["uncompressed", "compressed"] as const;

for (const golden of goldenCases()) {
  test(`saveToFile() writes the bytes save() streams for golden "${golden.name}", every format and layer mode`, async () => {
    await withTemp("save-to-file-", async (dir) => {
      for (const format of FORMATS) {
        for (const layers of MODES) {
          const options: SaveOptions = { format, layers };
          const path = `${dir}/${format}-${layers}.tar`;
          await saveToFile(path, await goldenEntries(golden), options);
          const streamed = await readAll(
            save(await goldenEntries(golden), options),
          );
          assert.ok(
            Buffer.from(readFileSync(path)).equals(Buffer.from(streamed)),
            `${format}, ${layers}`,
          );
          if (format === "docker" && layers === "uncompressed") {
            assert.ok(
              Buffer.from(streamed).equals(Buffer.from(golden.expected)),
            );
          }
        }
      }
      assert.equal(
        readdirSync(dir).filter((f) => f.endsWith(".tmp")).length,
        0,
      );
    });
  });
}

test("saveToFile() reads a gzip layer of unknown size once; save() reads it twice", async () => {
  const layers = [await gzipLayer(3 * MiB, 1), await gzipLayer(MiB + 7, 2)];
  await withTemp("save-to-file-", async (dir) => {
    for (const format of FORMATS) {
      const streamedImage = testImage(layers.map((layer) => ({ layer })));
      const streamed = await readAll(
        save([["app:v1", streamedImage.image]], { format }),
      );
      const fileImage = testImage(layers.map((layer) => ({ layer })));
      const path = `${dir}/${format}.tar`;
      await saveToFile(path, [["app:v1", fileImage.image]], { format });
      assert.ok(
        Buffer.from(readFileSync(path)).equals(Buffer.from(streamed)),
        format,
      );
      const opens = (image: typeof fileImage) =>
        image.stats.calls.filter((call) => call.startsWith("openLayer")).length;
      assert.equal(opens(streamedImage), 2 * layers.length, format);
      assert.equal(opens(fileImage), layers.length, format);
    }
  });
});

test("saveToFile() fails on a corrupt layer of unknown size and leaves no file", async () => {
  const layer = await gzipLayer(2 * MiB, 3);
  await withTemp("save-to-file-", async (dir) => {
    for (
      const [what, spec, code] of [
        ["flipped blob byte", { tamper: flipByteAt(layer.size - 9) }, [
          "DIGEST_MISMATCH",
          "BAD_LAYER",
        ]],
        ["wrong diff_id", { diffId: `sha256:${"0".repeat(64)}` }, [
          "DIFF_ID_MISMATCH",
        ]],
      ] as const
    ) {
      const { image } = testImage([{ layer, ...spec }]);
      const path = `${dir}/out.tar`;
      await assert.rejects(
        saveToFile(path, [["app:v1", image]]),
        (error: unknown) =>
          error instanceof DockerSaveError &&
          (code as readonly string[]).includes(error.code),
        what,
      );
      assert.deepEqual(readdirSync(dir), [], what);
    }
  });
});
