/**
 * The CLI's progress view, fed by `save()`'s `onProgress` observer: what it
 * shows follows the bytes `save()` reads, and never changes what is saved.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { fromOciLayout, save } from "../../mod.ts";
import {
  bytes,
  Progress,
  type ProgressOptions,
} from "../../src/cli/progress_view.ts";
import { progressStream } from "../../src/save/progress.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases } from "../_kit/golden.ts";
import { readTar } from "../_kit/tar.ts";
import { digestOf } from "../_kit/digest.ts";
import { screenOf } from "../_kit/terminal.ts";

const [basic] = goldenCases().filter((c) => c.name === "basic");
const layout = `${basic.dir}/oci`;

// A view of the golden "basic" image from its OCI layout, expected.
async function basicView(options: ProgressOptions) {
  const progress = new Progress(options);
  const image = await fromOciLayout(layout, "basic");
  await progress.expect(image, "oracle/basic:v1");
  return { progress, image, layers: (await image.manifest()).layers };
}

test("Progress draws per-layer bytes, total, rate and ETA on a terminal", async () => {
  let now = 0;
  let out = "";
  const { progress, image, layers } = await basicView({
    write: (text) => out += text,
    tty: true,
    asStored: true,
    now: () => now,
    interval: 0,
    columns: () => 100,
  });
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
      `${layer.digest.slice(7, 19)} done${" ".repeat(7 + 1 + 32)} ${
        bytes(layer.size)
      }/${bytes(layer.size)}  oracle/basic:v1`,
    );
  }
  assert.match(
    last[3],
    new RegExp(
      `^total {8}done {8}\\[={30}\\] ${bytes(total)}/${
        bytes(total)
      }  \\d+ B/s$`,
    ),
  );
  // The terminal's escape sequences, on purpose.
  // deno-lint-ignore no-control-regex
  assert.match(out, /\x1b\[2Ktotal {8}saving {6}\[.*ETA \d+s$/m);
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
  assert.ok(out.trimEnd().endsWith(" B/s"));
});

test("Progress prints one line per layer when not on a terminal", async () => {
  const lines: string[] = [];
  const { progress, image, layers } = await basicView({
    write: (text) => lines.push(text),
  });
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
  // The layer.tar members of the reference's output, by diff_id.
  const tars = (await readTar(basic.expected))
    .filter((member) => member.name.endsWith("/layer.tar"));
  const tarSize = new Map(
    tars.map((m) => [digestOf(m.data), m.data.byteLength]),
  );
  const diffIds = JSON.parse(new TextDecoder().decode(await image.rawConfig()))
    .rootfs.diff_ids as string[];
  // The docker format writes the v1 directories top (newest) first; each
  // line gives the member's size (not the blob's).
  assert.deepEqual(
    lines,
    [...layers.keys()].reverse().map((index, i) =>
      `${layers[index].digest.slice(0, 19)} ${
        bytes(tarSize.get(diffIds[index])!)
      } (oracle/basic:v1, read 2 times) [${i + 1}/3]\n`
    ),
  );
  // The total is the tarball's layer bytes: the counting passes (blob
  // bytes) are not in it.
  const sum = tars.reduce((sum, member) => sum + member.data.byteLength, 0);
  assert.equal(progress.total, sum);
  assert.equal(progress.transferred, sum);
  assert.ok(progress.exact);
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

test("Progress labels a counting pass and keeps the total to the tarball's layer bytes", async () => {
  let now = 0;
  let out = "";
  const frames: string[][] = [];
  const { progress, image, layers } = await basicView({
    write: (text) => {
      out += text;
      frames.push(screenOf(out));
    },
    tty: true,
    now: () => now,
    interval: 0,
    columns: () => 100,
  });
  // An OCI layout knows no uncompressed size: not yet in the total.
  assert.equal(progress.exact, false);
  const tarball = await readAll(save([["oracle/basic:v1", image]], {
    onProgress: (update) => {
      now += 100;
      progress.listener(update);
    },
  }));
  progress.finish("done");
  const sum = (await readTar(tarball))
    .filter((member) => member.name.endsWith("/layer.tar"))
    .reduce((sum, member) => sum + member.data.byteLength, 0);
  // Nothing known, nothing written: an empty bar, not a full one.
  assert.match(frames[0].at(-1)!, /^total +saving +\[ +\] 0 B\/≥0 B /);
  let counting = 0;
  for (const frame of frames) {
    const total = frame.at(-1)!;
    const shown = /\] ([\d.]+ [KMG]?i?B)\/(≥?)([\d.]+ [KMG]?i?B) /.exec(total);
    assert.ok(shown, total);
    // Never more than the tarball's layer bytes (the blob bytes of a
    // counting pass are not in it); exact once every size is known.
    if (shown[2] === "") assert.equal(shown[3], bytes(sum), total);
    for (const [i, layer] of layers.entries()) {
      const row = frame[i];
      if (!/ counting /.test(row)) continue;
      counting++;
      assert.ok(row.includes(`/${bytes(layer.size)} `), row);
    }
  }
  assert.ok(counting >= layers.length, "each counting pass is labelled");
  const last = frames.at(-1)!;
  assert.match(
    last.at(-1)!,
    new RegExp(
      `^total {8}done .*\\] ${bytes(sum).replace(".", "\\.")}/${
        bytes(sum).replace(".", "\\.")
      } `,
    ),
  );
  assert.equal(progress.total, sum);
});

test("Progress ends cut-short rows as interrupted or failed, with no ETA", async () => {
  for (const outcome of ["interrupted", "failed"] as const) {
    let out = "";
    let now = 0;
    const { progress, layers: [first] } = await basicView({
      write: (text) => out += text,
      tty: true,
      asStored: true,
      now: () => now += 1000,
      interval: 0,
    });
    // The first layer's body ends half-way (its source was cancelled).
    const half = Math.floor(first.size / 2);
    const body = progressStream(
      new Blob([new Uint8Array(half)]).stream(),
      progress.listener,
      {
        name: "x/layer.tar",
        digest: first.digest,
        phase: "writing",
        total: first.size,
      },
    );
    await readAll(body);
    assert.match(screenOf(out)[0], / failed /, "an end short is no done");
    progress.finish(outcome);
    const screen = screenOf(out);
    assert.match(screen[0], new RegExp(` ${outcome} +${bytes(half)}/`));
    assert.match(screen[1], / waiting /);
    assert.match(screen.at(-1)!, new RegExp(`^total {8}${outcome} `));
    assert.doesNotMatch(screen.at(-1)!, /ETA/);
  }
});

test("Progress prints a note above the live rows, never inside a frame", async () => {
  let out = "";
  const { progress, layers } = await basicView({
    write: (text) => out += text,
    tty: true,
    asStored: true,
    now: () => 0, // the same rate in every frame
    interval: 0,
  });
  for (const complete of [0, 10]) {
    progress.listener({
      name: "x/layer.tar",
      digest: layers[0].digest,
      phase: "writing",
      complete,
      total: layers[0].size,
      state: "reading",
    });
  }
  const before = screenOf(out);
  assert.equal(before.length, 4);
  progress.note("docker-save: GET blob: status 503; retry 1 of 5 in 0.5 s\n");
  const after = screenOf(out);
  assert.deepEqual(after, [
    "docker-save: GET blob: status 503; retry 1 of 5 in 0.5 s",
    ...before,
  ]);
  progress.note("second\n");
  assert.deepEqual(screenOf(out).slice(0, 2), [after[0], "second"]);
  assert.deepEqual(screenOf(out).slice(2), before);
});

test("Progress redraws a stalled read on tick(): the rate falls to 0, no ETA", async () => {
  let out = "";
  let now = 0;
  const { progress, layers } = await basicView({
    write: (text) => out += text,
    tty: true,
    asStored: true,
    now: () => now,
  });
  const update = { name: "x", digest: layers[0].digest, total: layers[0].size };
  for (const complete of [0, 100]) {
    now += 1000;
    progress.listener({
      ...update,
      phase: "writing",
      complete,
      state: "reading",
    });
  }
  progress.tick();
  const total = () => screenOf(out).at(-1)!;
  assert.match(total(), / 100 B\/s {2}ETA 7s$/);
  now += 10_000; // nothing comes
  progress.tick();
  assert.match(total(), / 0 B\/s {2}ETA --$/, "nothing came in 5 s");
  progress.finish("interrupted");
  const drawn = out.length;
  now += 10_000;
  progress.tick();
  assert.equal(out.length, drawn, "nothing after the last frame");
});
