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
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { fromOciLayout, save } from "../mod.ts";
import { createDecompressor } from "../src/runtime/decompress.ts";
import { goldenCases, readAll, TESTDATA } from "./_golden.ts";
import {
  assertSameBytes,
  memberText,
  readTar,
  sha256Hex,
  v1Id,
} from "./_fixtures.ts";
import { requireSkopeo, skip, skopeo, TIMEOUT } from "./_skopeo.ts";

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
    { skip, timeout: TIMEOUT },
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
