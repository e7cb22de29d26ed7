/**
 * zstd layers (`application/vnd.oci.image.layer.v1.tar+zstd`): decompressed
 * in uncompressed mode (node:zlib where the runtime has zstd, fzstd
 * elsewhere; every frame of a multi-frame blob), written as stored in
 * compressed mode. tests/testdata/zstd is the golden basic image recompressed
 * by Debian's zstd (make.sh there), so its layer tars are basic's.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { gunzipSync } from "node:zlib";
import { fromOciLayout, save } from "../../mod.ts";
import { createDecompressor } from "../../src/runtime/decompress.ts";
import { assertSameBytes, concat, readAll } from "../_kit/bytes.ts";
import { sha256Hex } from "../_kit/digest.ts";
import { v1Id } from "../_kit/format.ts";
import { MiB } from "../_kit/generated.ts";
import { goldenCases, TESTDATA } from "../_kit/golden.ts";
import { requireSkopeo, skopeo, skopeoSkip as skip } from "../_kit/skopeo.ts";
import { memberText, readTar } from "../_kit/tar.ts";
import { sleep, TOOL_TIMEOUT } from "../_kit/time.ts";

// The reference zstd, to check the hand-written frames: skipped without it,
// failed on CI.
const zstdInstalled = spawnSync("zstd", ["--version"]).status === 0;
const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const zstdSkip = zstdInstalled || ci ? false : "zstd not installed";
function requireZstd(): void {
  assert.ok(zstdInstalled, "zstd is not installed");
}

const LAYOUT = `${TESTDATA}zstd/oci`;
const basic = goldenCases().find((c) => c.name === "basic")!;
const TAG = "oracle/zstd:v1";

/** basic's layer tars, from its golden tarball, oldest first. */
async function basicLayerTars(): Promise<Uint8Array[]> {
  const members = await readTar(basic.expected);
  const layers = JSON.parse(memberText(members, "manifest.json"))[0].Layers;
  return layers.map((name: string) =>
    members.find((member) => member.name === name)!.data
  );
}

async function zstdBlobs(): Promise<Uint8Array[]> {
  const image = await fromOciLayout(LAYOUT);
  const manifest = await image.manifest();
  return Promise.all(
    manifest.layers.map(async (layer) =>
      await readAll(await image.openLayer(layer))
    ),
  );
}

test('createDecompressor("zstd") reads every frame; a cut blob errors', async () => {
  const [tars, blobs] = [await basicLayerTars(), await zstdBlobs()];
  for (const [i, blob] of blobs.entries()) {
    const out = await readAll(
      new Blob([blob as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        await createDecompressor("zstd"),
      ),
    );
    assertSameBytes(out, tars[i]);
  }
  const cut = blobs[2].subarray(0, blobs[2].byteLength - 5);
  await assert.rejects(
    readAll(
      new Blob([cut as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        await createDecompressor("zstd"),
      ),
    ),
  );
});

test("save() writes zstd layers uncompressed, with v1 ids from their digests", async () => {
  const image = await fromOciLayout(LAYOUT, "zstd");
  const manifest = await image.manifest();
  const config = new TextDecoder().decode(await image.rawConfig());
  const members = await readTar(save([[TAG, image]]));
  const hex = manifest.layers.map((layer) => layer.digest.slice(7));
  const id1 = v1Id(hex[0], "");
  const id2 = v1Id(hex[1], id1);
  const id3 = v1Id(hex[2], id2, config);
  const tars = await basicLayerTars();
  for (const [i, id] of [id1, id2, id3].entries()) {
    const tar = members.find((m) => m.name === `${id}/layer.tar`);
    assert.ok(tar, `${id}/layer.tar`);
    assertSameBytes(tar.data, tars[i]);
  }
  assert.equal(
    memberText(members, "repositories"),
    `{"oracle/zstd": {"v1": "${id3}"}}`,
  );
  // The config member is basic's, by name and bytes.
  assert.ok(
    members.some((m) => m.name === `${sha256Hex(config)}.json`),
  );
});

test("save() writes zstd layers as stored in compressed mode", async () => {
  const image = await fromOciLayout(LAYOUT, "zstd");
  const members = await readTar(
    save([[TAG, image]], { layers: "compressed" }),
  );
  const blobs = await zstdBlobs();
  const layerTars = members.filter((m) => m.name.endsWith("/layer.tar"));
  // Layer directories are written newest first.
  assert.deepEqual(
    layerTars.map((m) => sha256Hex(m.data)),
    blobs.map((blob) => sha256Hex(blob)).reverse(),
  );
});

for (const layers of ["uncompressed", "compressed"] as const) {
  test(
    `skopeo reads the ${layers} tarball of a zstd image`,
    { skip, timeout: TOOL_TIMEOUT },
    async () => {
      requireSkopeo();
      const dir = await mkdtemp(join(tmpdir(), "docker-save-zstd-"));
      try {
        const image = await fromOciLayout(LAYOUT, "zstd");
        await writeFile(
          join(dir, "out.tar"),
          await readAll(save([[TAG, image]], { layers })),
        );
        await skopeo([
          "--insecure-policy",
          "copy",
          "--quiet",
          `docker-archive:${join(dir, "out.tar")}:${TAG}`,
          `dir:${join(dir, "copy")}`,
        ]);
        const copied = JSON.parse(
          await readFile(join(dir, "copy", "manifest.json"), "utf8"),
        );
        const config = JSON.parse(
          new TextDecoder().decode(await image.rawConfig()),
        );
        // skopeo's dir: copy holds the layers uncompressed: their digests
        // are the diff_ids.
        assert.deepEqual(
          copied.layers.map((l: { digest: string }) => l.digest),
          config.rootfs.diff_ids,
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
}

test("the zstd test image has basic's layer contents", async () => {
  // Independent of our decompressor: basic's gzip blobs, gunzipped by zlib.
  const image = await fromOciLayout(`${basic.dir}/oci`, "basic");
  const manifest = await image.manifest();
  const tars = await basicLayerTars();
  for (const [i, layer] of manifest.layers.entries()) {
    const blob = await readAll(await image.openLayer(layer));
    assertSameBytes(new Uint8Array(gunzipSync(blob)), tars[i]);
  }
});

// ------------------------------------------------- hostile zstd (issue 10)

/**
 * A zstd frame written by hand from RFC 8878: no checksum, no content size,
 * a window of 2^windowLog bytes, then the given blocks.
 */
function zstdFrame(windowLog: number, blocks: Uint8Array[]): Uint8Array {
  const header = [0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3];
  return concat([new Uint8Array(header), ...blocks]);
}

/** A block: type 0 raw, 1 RLE (`body` is the byte), 2 compressed. */
function zstdBlock(
  type: number,
  size: number,
  last: boolean,
  body: number[],
): Uint8Array {
  const header = size * 8 + type * 2 + (last ? 1 : 0);
  return new Uint8Array([
    header & 0xff,
    (header >> 8) & 0xff,
    header >> 16,
    ...body,
  ]);
}

/** `count` RLE blocks of `size` bytes, block i repeating byte i & 255. */
function rleBlocks(count: number, size: number): Uint8Array[] {
  return Array.from(
    { length: count },
    (_, i) => zstdBlock(1, size, i === count - 1, [i & 255]),
  );
}

function inflate(blob: Uint8Array): Promise<ReadableStream<Uint8Array>> {
  return createDecompressor("zstd").then((pair) =>
    new Blob([blob as Uint8Array<ArrayBuffer>]).stream().pipeThrough(pair)
  );
}

/**
 * Bytes held in array buffers: Node counts them (`arrayBuffers`), Deno in
 * `external`; Bun reports neither, so its resident set stands in.
 */
function bufferBytes(): number {
  const usage = process.memoryUsage();
  return usage.arrayBuffers || usage.external || usage.rss;
}

test('createDecompressor("zstd") inflates a 32 KiB frame of 1 GiB no further than the read-ahead bound', async () => {
  const BLOCK = 128 * 1024;
  const bomb = zstdFrame(20, rleBlocks(8192, BLOCK));
  assert.equal(bomb.byteLength, 6 + 8192 * 4);
  const before = bufferBytes();
  const reader = (await inflate(bomb)).getReader();
  let inflated = 0;
  const check = (chunk: Uint8Array) => {
    // Block i repeats byte i & 255: the chunk's first and last bytes.
    for (const at of [inflated, inflated + chunk.byteLength - 1]) {
      const expected = Math.floor(at / BLOCK) & 255;
      assert.equal(chunk[at - inflated], expected, `byte ${at}`);
    }
    inflated += chunk.byteLength;
  };
  const first = await reader.read();
  check(first.value!);
  // The consumer stalls: inflating stops within the read-ahead bound (1 MiB
  // and a block), not at the 16 KiB input slice's 512 MiB.
  await sleep(200);
  const grown = bufferBytes() - before;
  assert.ok(grown < 64 * MiB, `memory grew by ${grown} bytes while stalled`);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    check(value);
  }
  assert.equal(inflated, 8192 * BLOCK);
});

test('createDecompressor("zstd") refuses a 2 KiB frame of 2 MiB RLE blocks (1 GiB), blocks the format forbids', async () => {
  // RFC 8878: Block_Size is at most min(Window_Size, 128 KiB), also for RLE.
  const bomb = zstdFrame(23, rleBlocks(512, 2 ** 21 - 1));
  assert.ok(bomb.byteLength < 2100);
  const before = bufferBytes();
  const reader = (await inflate(bomb)).getReader();
  let inflated = 0;
  await assert.rejects(
    (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        inflated += value.byteLength;
        assert.ok(inflated <= 16 * MiB, "inflated past 16 MiB");
      }
    })(),
    /block of 2097151 bytes/,
  );
  assert.ok(bufferBytes() - before < 256 * MiB, "the frame was inflated whole");
});

test('createDecompressor("zstd") refuses a window over 128 MiB, the reference decoder\'s default limit', async () => {
  const hello = zstdBlock(0, 5, true, [...new TextEncoder().encode("hello")]);
  const read = async (blob: Uint8Array) =>
    new TextDecoder().decode(await readAll(await inflate(blob)));
  assert.equal(await read(zstdFrame(27, [hello])), "hello");
  await assert.rejects(read(zstdFrame(28, [hello])), /window/);
});

test("the reference zstd agrees on the hand-written frames", {
  skip: zstdSkip,
}, () => {
  requireZstd();
  const test = (blob: Uint8Array) =>
    spawnSync("zstd", ["-t", "-q"], { input: blob }).status;
  const hello = zstdBlock(0, 5, true, [...new TextEncoder().encode("hello")]);
  assert.equal(test(zstdFrame(20, rleBlocks(8192, 128 * 1024))), 0);
  assert.equal(test(zstdFrame(27, [hello])), 0);
  assert.notEqual(test(zstdFrame(23, rleBlocks(4, 2 ** 21 - 1))), 0);
  assert.notEqual(test(zstdFrame(28, [hello])), 0);
});
