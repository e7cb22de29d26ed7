/**
 * The CLI's progress view, fed by `save()`'s `onProgress` observer: what it
 * shows follows the bytes `save()` reads, and never changes what is saved.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { fromOciLayout, save } from "../../mod.ts";
import { bytes, Progress } from "../../src/cli/progress_view.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases } from "../_kit/golden.ts";
import { readTar } from "../_kit/tar.ts";

const [basic] = goldenCases().filter((c) => c.name === "basic");
const layout = `${basic.dir}/oci`;

test("Progress draws per-layer bytes, total, rate and ETA on a terminal", async () => {
  let now = 0;
  let out = "";
  const progress = new Progress({
    write: (text) => out += text,
    tty: true,
    now: () => now,
    interval: 0,
    columns: () => 100,
  });
  const image = await fromOciLayout(layout, "basic");
  await progress.expect(image, "oracle/basic:v1");
  const layers = (await image.manifest()).layers;
  const total = layers.reduce((sum, layer) => sum + layer.size, 0);
  assert.equal(progress.total, total);
  // Compressed: one pass per layer, the blob as stored.
  const tar = save([["oracle/basic:v1", image]], {
    layers: "compressed",
    onProgress: (update) => {
      now += 1000;
      progress.listener(update);
    },
  });
  const saved = await readAll(tar);
  progress.finish();
  assert.ok(
    Buffer.from(saved).equals(
      Buffer.from(
        await readAll(
          save([["oracle/basic:v1", image]], { layers: "compressed" }),
        ),
      ),
    ),
    "progress changes no byte",
  );
  assert.equal(progress.transferred, total);
  const frames = out.split("\x1b[4F");
  const last = frames.at(-1)!.split("\n").map((line) =>
    line.replace("\x1b[2K", "")
  );
  assert.equal(last.length, 5);
  for (const [i, layer] of layers.entries()) {
    assert.equal(
      last[i],
      `${layer.digest.slice(7, 19)} done${" ".repeat(28)} ${
        bytes(layer.size)
      }/${bytes(layer.size)}  oracle/basic:v1`,
    );
  }
  assert.match(
    last[3],
    new RegExp(
      `^total {8}\\[={30}\\] ${bytes(total)}/${bytes(total)}  \\d+ B/s  done$`,
    ),
  );
  assert.match(out, /ETA \d+s/);
  // Nothing is drawn after the final view (no stale "total … ETA" line).
  const drawn = out.length;
  progress.listener({
    name: "x",
    digest: layers[0].digest,
    phase: "writing",
    complete: 1,
    total: 1,
    state: "reading",
  });
  progress.finish();
  assert.equal(out.length, drawn);
  assert.ok(out.trimEnd().endsWith("done"));
});

test("Progress prints one line per layer when not on a terminal", async () => {
  const lines: string[] = [];
  const progress = new Progress({ write: (text) => lines.push(text) });
  const image = await fromOciLayout(layout, "basic");
  await progress.expect(image, "oracle/basic:v1");
  const layers = (await image.manifest()).layers;
  // Uncompressed from an OCI layout: each layer is counted, then written.
  const updates: string[] = [];
  await readAll(save([["oracle/basic:v1", image]], {
    onProgress: (update) => {
      if (update.state !== "reading") {
        updates.push(`${update.phase} ${update.state}`);
      }
      progress.listener(update);
    },
  }));
  progress.finish();
  assert.deepEqual(
    updates,
    layers.flatMap(() => ["counting done", "writing done"]),
  );
  // The docker format writes the v1 directories top (newest) first.
  assert.deepEqual(
    lines,
    [...layers].reverse().map((layer, i) =>
      `${layer.digest.slice(0, 19)} ${
        bytes(layer.size)
      } (oracle/basic:v1, read 2 times) [${i + 1}/3]\n`
    ),
  );
  // Each layer's blob once (counting) and its uncompressed tar once: the
  // layer.tar members of the reference's output.
  const blobs = layers.reduce((sum, layer) => sum + layer.size, 0);
  const tars = (await readTar(basic.expected))
    .filter((member) => member.name.endsWith("/layer.tar"))
    .reduce((sum, member) => sum + member.data.byteLength, 0);
  assert.equal(progress.total, blobs + tars);
  assert.equal(progress.transferred, progress.total);
});

test("Progress names each platform's layers of an image index", async () => {
  const { fixture } = await import("../_kit/multi_platform.ts");
  const { index, amd64, arm64 } = await fixture();
  const lines: string[] = [];
  const progress = new Progress({ write: (text) => lines.push(text) });
  await progress.expect(index, "app:v1");
  await readAll(save([["app:v1", index]], {
    format: "oci",
    layers: "compressed",
    onProgress: progress.listener,
  }));
  progress.finish();
  const layersOf = async (image: typeof amd64) =>
    (await image.manifest()).layers.map((layer) => layer.digest);
  for (
    const [image, platform] of [[amd64, "linux/amd64"], [
      arm64,
      "linux/arm64/v8",
    ]] as const
  ) {
    for (const digest of await layersOf(image)) {
      const line = lines.find((l) => l.startsWith(digest.slice(0, 19)));
      assert.ok(line, `no line for ${digest}`);
      assert.ok(line.includes(`(app:v1 ${platform})`), line);
    }
  }
  // The attestation's statement is a blob of its own, named too.
  assert.equal(lines.length, 5, lines.join(""));
});
