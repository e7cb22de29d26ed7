/**
 * The real consumer check: skopeo reads every tarball `save()` writes
 * (`docker-archive:` transport), re-hashes each layer against its diff_id and
 * copies the image to a `dir:` layout, whose manifest is then compared with
 * ours.
 *
 * Without skopeo on PATH the tests are skipped, unless `CI` is set: then they
 * fail, so a CI machine cannot silently lose the check.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unpackTar } from "modern-tar";
import { gunzipSync } from "node:zlib";
import { save, type SaveOptions } from "../../src/save/save.ts";
import type { Image } from "../../src/model/image.ts";
import { buildImage } from "../../src/sources/memory.ts";
import { tarStream } from "../../src/save/tar_writer.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { requireSkopeo, skopeo, skopeoSkip as skip } from "../_kit/skopeo.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";
import { digestOf } from "../_kit/digest.ts";

interface DockerManifestEntry {
  Config: string;
  Layers: string[];
  RepoTags: string[];
}

interface SkopeoManifest {
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
}

/** The members of our tarball, by name. */
async function members(tar: Uint8Array): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const entry of await unpackTar(tar)) {
    out.set(entry.header.name, new Uint8Array(entry.data ?? []));
  }
  return out;
}

/**
 * Saves the pairs, then has skopeo copy every tag out of the tarball and
 * checks what it wrote against our manifest.json.
 */
async function checkWithSkopeo(
  entries: [string, Image][],
  options: SaveOptions = {},
): Promise<void> {
  requireSkopeo();
  const tar = await readAll(save(entries, options));
  const compressed = options.layers === "compressed";
  const files = await members(tar);
  const manifestJson = files.get("manifest.json");
  assert.ok(manifestJson, "tarball has no manifest.json");
  const manifest = JSON.parse(
    new TextDecoder().decode(manifestJson),
  ) as DockerManifestEntry[];

  const work = await mkdtemp(join(tmpdir(), "docker-save-skopeo-"));
  try {
    const archive = join(work, "out.tar");
    await writeFile(archive, tar);
    for (const [i, [tag]] of entries.entries()) {
      const ours = manifest.find((entry) => entry.RepoTags.includes(tag));
      assert.ok(ours, `manifest.json has no entry for ${tag}`);
      const config = files.get(ours.Config);
      assert.ok(config, `tarball has no ${ours.Config}`);

      const dir = join(work, `dir-${i}`);
      await skopeo([
        "--insecure-policy",
        "copy",
        "--quiet",
        `docker-archive:${archive}:${tag}`,
        `dir:${dir}`,
      ]);
      const copied = JSON.parse(
        await readFile(join(dir, "manifest.json"), "utf8"),
      ) as SkopeoManifest;
      assert.equal(
        copied.layers.length,
        ours.Layers.length,
        `${tag}: skopeo copied ${copied.layers.length} layers, manifest.json lists ${ours.Layers.length}`,
      );
      assert.equal(
        copied.config.digest,
        digestOf(config),
        `${tag}: config digest`,
      );
      // dir: keeps layers uncompressed: each digest is the sha256 of its
      // layer.tar, gunzipped in compressed mode.
      assert.deepEqual(
        copied.layers.map((layer) => layer.digest),
        ours.Layers.map((name) => {
          const layer = files.get(name);
          assert.ok(layer, `tarball has no ${name}`);
          return digestOf(
            compressed ? new Uint8Array(gunzipSync(layer)) : layer,
          );
        }),
        `${tag}: layer digests`,
      );
      // skopeo keeps the config bytes as they are.
      assert.deepEqual(
        new Uint8Array(
          await readFile(join(dir, copied.config.digest.split(":")[1])),
        ),
        config,
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

for (const golden of goldenCases()) {
  test(
    `skopeo reads the tarball of golden case "${golden.name}"`,
    { skip, timeout: TOOL_TIMEOUT },
    async () => {
      await checkWithSkopeo(await goldenEntries(golden));
    },
  );
  test(
    `skopeo reads the layers: "compressed" tarball of golden case "${golden.name}"`,
    { skip, timeout: TOOL_TIMEOUT },
    async () => {
      await checkWithSkopeo(await goldenEntries(golden), {
        layers: "compressed",
      });
    },
  );
}

test(
  "skopeo reads a built image with two gzip layers",
  { skip, timeout: TOOL_TIMEOUT },
  async () => {
    const text = (s: string) => new TextEncoder().encode(s);
    const layerTar = (files: [string, string][]) =>
      readAll(tarStream(files.map(([name, content]) => {
        const body = text(content);
        return { name, size: body.length, body };
      })));
    const image = await buildImage({
      layers: [
        await layerTar([["etc/hello.txt", "hello\n"], ["etc/os", "test\n"]]),
        await layerTar([["app/main.sh", "#!/bin/sh\necho hi\n"]]),
      ],
      config: {
        architecture: "amd64",
        os: "linux",
        config: { Cmd: ["/app/main.sh"] },
      },
      compression: "gzip",
    });
    await checkWithSkopeo([["example.com/built/app:v1", image]]);
  },
);
