/**
 * The OCI layouts `save()` writes (`format: "oci"` and `"docker+oci"`), in
 * both layer modes, checked by skopeo (`oci-archive:` and `docker-archive:`)
 * and against the OCI image-layout rules: every blob is named by the sha256
 * of its bytes and stored once, and the manifests describe those bytes.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { unpackTar } from "modern-tar";
import { type LayerMode, save, type SaveFormat } from "../../src/save/save.ts";
import type { Image } from "../../src/model/image.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { requireSkopeo, skopeo, skopeoSkip as skip } from "../_kit/skopeo.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";
import { sha256Hex } from "../_kit/digest.ts";

const json = (bytes: Uint8Array | undefined) => {
  assert.ok(bytes, "member is missing");
  return JSON.parse(new TextDecoder().decode(bytes));
};

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

async function membersOf(tar: Uint8Array): Promise<Map<string, Uint8Array>> {
  const members = new Map<string, Uint8Array>();
  for (const { header, data } of await unpackTar(tar)) {
    assert.ok(!members.has(header.name), `${header.name} is stored twice`);
    members.set(header.name, new Uint8Array(data ?? []));
  }
  return members;
}

/** Checks the layout rules; returns the members. */
async function checkLayout(
  tar: Uint8Array,
  entries: [string, Image][],
  format: SaveFormat,
  layers: LayerMode,
): Promise<Map<string, Uint8Array>> {
  const members = await membersOf(tar);
  assert.deepEqual(json(members.get("oci-layout")), {
    imageLayoutVersion: "1.0.0",
  });
  for (const [name, bytes] of members) {
    if (name.startsWith("blobs/")) {
      assert.equal(name, `blobs/sha256/${sha256Hex(bytes)}`, "blob name");
    }
  }
  const blob = (d: OciDescriptor) => {
    const bytes = members.get(`blobs/sha256/${d.digest.slice(7)}`);
    assert.ok(bytes, `blob ${d.digest} is missing`);
    assert.equal(bytes.byteLength, d.size, `size of ${d.digest}`);
    return bytes;
  };
  const index = json(members.get("index.json"));
  assert.equal(index.manifests.length, entries.length);
  for (const [i, [tag, image]] of entries.entries()) {
    const entry: OciDescriptor = index.manifests[i];
    assert.equal(
      entry.annotations?.["org.opencontainers.image.ref.name"],
      tag,
    );
    if (format === "docker+oci") {
      assert.match(
        entry.annotations?.["io.containerd.image.name"] ?? "",
        new RegExp(`/${tag.replace(/^[^/]*\//, "")}$`),
      );
    }
    const manifest = json(blob(entry));
    assert.equal(
      manifest.mediaType,
      "application/vnd.oci.image.manifest.v1+json",
    );
    const original = await image.manifest();
    const config = json(blob(manifest.config));
    assert.equal(manifest.config.digest, original.config.digest);
    assert.equal(manifest.layers.length, original.layers.length);
    for (const [k, layer] of manifest.layers.entries()) {
      const bytes = blob(layer);
      if (layers === "compressed") {
        assert.equal(layer.digest, original.layers[k].digest);
        assert.match(layer.mediaType, /^application\/vnd\.oci\.image\.layer\./);
        assert.equal(
          `sha256:${sha256Hex(gunzipSync(bytes))}`,
          config.rootfs.diff_ids[k],
        );
      } else {
        assert.match(
          layer.mediaType,
          /^application\/vnd\.oci\.image\.layer\.(nondistributable\.)?v1\.tar$/,
        );
        assert.equal(layer.digest, config.rootfs.diff_ids[k]);
      }
      assert.equal(layer.urls, undefined);
    }
  }
  if (format === "docker+oci") {
    const manifestJson = json(members.get("manifest.json"));
    for (const [i, [tag]] of entries.entries()) {
      assert.deepEqual(manifestJson[i].RepoTags, [tag]);
      for (const name of [manifestJson[i].Config, ...manifestJson[i].Layers]) {
        assert.ok(members.has(name), `manifest.json names missing ${name}`);
      }
    }
    assert.ok(members.has("repositories"));
  } else {
    assert.ok(!members.has("manifest.json"));
  }
  return members;
}

async function checkWithSkopeo(
  tar: Uint8Array,
  entries: [string, Image][],
  format: SaveFormat,
): Promise<void> {
  requireSkopeo();
  const work = await mkdtemp(join(tmpdir(), "docker-save-formats-"));
  try {
    const archive = join(work, "out.tar");
    await writeFile(archive, tar);
    const transports = format === "docker+oci"
      ? ["oci-archive", "docker-archive"]
      : ["oci-archive"];
    for (const [i, [tag, image]] of entries.entries()) {
      for (const transport of transports) {
        const dir = join(work, `${transport}-${i}`);
        await skopeo([
          "--insecure-policy",
          "copy",
          "--quiet",
          `${transport}:${archive}:${tag}`,
          `dir:${dir}`,
        ]);
        const copied = JSON.parse(
          await readFile(join(dir, "manifest.json"), "utf8"),
        );
        const original = await image.manifest();
        assert.equal(copied.config.digest, original.config.digest);
        assert.equal(copied.layers.length, original.layers.length);
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

for (const golden of goldenCases()) {
  for (const format of ["oci", "docker+oci"] as const) {
    for (const layers of ["uncompressed", "compressed"] as const) {
      test(
        `save() writes a ${format} layout of "${golden.name}" with ${layers} layers that skopeo reads`,
        { skip, timeout: TOOL_TIMEOUT },
        async () => {
          const entries = await goldenEntries(golden);
          const tar = await readAll(save(entries, { format, layers }));
          await checkLayout(tar, entries, format, layers);
          await checkWithSkopeo(tar, entries, format);
        },
      );
    }
  }
}

test("save() writes the same oci bytes twice", async () => {
  const [golden] = goldenCases();
  const once = await readAll(
    save(await goldenEntries(golden), { format: "docker+oci" }),
  );
  const twice = await readAll(
    save(await goldenEntries(golden), { format: "docker+oci" }),
  );
  assert.deepEqual(once, twice);
});

test("save() stores a layer shared by two images once in an oci layout", async () => {
  const cases = goldenCases().filter((c) =>
    c.name === "basic" || c.name === "empty-layers"
  );
  const entries = [
    ...await goldenEntries(cases[0]),
    ...await goldenEntries(cases[1]),
  ];
  const tar = await readAll(save(entries, { format: "oci" }));
  const members = await checkLayout(tar, entries, "oci", "uncompressed");
  // Both images have the same three layers, so three layer blobs in all.
  const layerBlobs = [...members.keys()].filter((name) =>
    name.startsWith("blobs/") &&
    members.get(name)!.byteLength === 10240
  );
  assert.equal(layerBlobs.length, 3);
});
