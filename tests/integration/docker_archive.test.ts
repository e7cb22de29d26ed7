/**
 * fromDockerArchive(): every golden tarball read back and saved again gives
 * the same bytes (plain, gzip-compressed, written with compressed layers,
 * docker ≥ 25's layout), re-tagging changes only the tags, two archives
 * merge into one that skopeo reads, bad archives fail clearly, and layers are
 * streamed from their offsets.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { packTar } from "modern-tar";
import {
  buildImage,
  type DockerArchiveImage,
  DockerSaveError,
  fromDockerArchive,
  type Image,
  indexDockerArchive,
  save,
  type SaveOptions,
} from "../../mod.ts";
import { parseDockerArchiveSource } from "../../src/sources/archive/docker_archive.ts";
import { describeLayer } from "../../src/model/layer.ts";
import {
  type ArchiveFileSystem,
  nodeArchiveFileSystem,
} from "../../src/sources/archive/archive_index.ts";
import type { ByteRange } from "../../src/runtime/fs.ts";
import { readAll, sameBytes } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { countArchiveReads } from "../_kit/layout.ts";
import { requireSkopeo, skopeo, skopeoSkip as skip } from "../_kit/skopeo.ts";
import { memberText, readTar, type TarMember } from "../_kit/tar.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Each tag of a golden case read from `path`, in the case's order. */
async function archiveEntries(
  path: string,
  tags: string[],
): Promise<[string, DockerArchiveImage][]> {
  const index = await indexDockerArchive(path);
  const entries: [string, DockerArchiveImage][] = [];
  for (const tag of tags) {
    entries.push([tag, await fromDockerArchive(path, tag, { index })]);
  }
  return entries;
}

async function saved(
  entries: [string, Image][],
  options?: SaveOptions,
): Promise<Uint8Array> {
  return await readAll(save(entries, options));
}

function tar(
  files: [string, Uint8Array | string][],
  extra: { name: string; type: "directory" | "symlink"; linkname?: string }[] =
    [],
): Promise<Uint8Array> {
  return packTar([
    ...extra.map((entry) => ({
      header: {
        name: entry.name,
        size: 0,
        type: entry.type,
        linkname: entry.linkname,
      },
    })),
    ...files.map(([name, body]) => {
      const bytes = typeof body === "string" ? encoder.encode(body) : body;
      return { header: { name, size: bytes.byteLength }, body: bytes };
    }),
  ]);
}

const goldens = goldenCases();
const basic = goldens.find((golden) => golden.name === "basic")!;
const tagsOf = (golden: (typeof goldens)[number]) =>
  golden.save.map((entry) => entry.tag);

for (const golden of goldens) {
  test(`fromDockerArchive() reads golden "${golden.name}" back to the same bytes`, async () => {
    const path = `${golden.dir}/expected.tar`;
    const entries = await archiveEntries(path, tagsOf(golden));
    sameBytes(await saved(entries), golden.expected, golden.name);
    assert.deepEqual(entries.map(([, image]) => image.repoTags), [
      ...entries.map(([tag]) => [tag]),
    ]);
  });

  test(`fromDockerArchive() re-tags golden "${golden.name}": only RepoTags and repositories change`, async () => {
    const path = `${golden.dir}/expected.tar`;
    const [{ tag }] = golden.save;
    const image = await fromDockerArchive(path, tag);
    const original = await readTar(await saved([[tag, image]]));
    const retagged = await readTar(await saved([["new/tag:v9", image]]));
    const byName = (members: TarMember[], skipNames: string[]) =>
      members.filter((member) => !skipNames.includes(member.name));
    assert.deepEqual(
      byName(retagged, ["repositories", "manifest.json"]),
      byName(original, ["repositories", "manifest.json"]),
    );
    const before = JSON.parse(memberText(original, "manifest.json"));
    const after = JSON.parse(memberText(retagged, "manifest.json"));
    assert.deepEqual(after, [{ ...before[0], RepoTags: ["new/tag:v9"] }]);
    const [repo, tagName] = tag.split(":");
    const topId = JSON.parse(memberText(original, "repositories"))[repo][
      tagName
    ];
    assert.deepEqual(JSON.parse(memberText(retagged, "repositories")), {
      "new/tag": { v9: topId },
    });
    // The original tag's archive, as the golden tarball has it.
    const goldenRepositories = JSON.parse(
      memberText(await readTar(golden.expected), "repositories"),
    );
    assert.equal(topId, goldenRepositories[repo][tagName]);
  });

  test(`fromDockerArchive() reads golden "${golden.name}" gzip-compressed`, async () => {
    await withTemp("docker-save-archive-", async (dir) => {
      const path = join(dir, "golden.tar.gz");
      writeFileSync(path, gzipSync(golden.expected));
      const entries = await archiveEntries(path, tagsOf(golden));
      sameBytes(await saved(entries), golden.expected, golden.name);
    });
  });

  test(`fromDockerArchive() keeps the v1 form of golden "${golden.name}" saved with compressed layers`, async () => {
    await withTemp("docker-save-archive-", async (dir) => {
      const path = join(dir, "compressed.tar");
      writeFileSync(
        path,
        await saved(await goldenEntries(golden), { layers: "compressed" }),
      );
      const entries = await archiveEntries(path, tagsOf(golden));
      for (const [, image] of entries) {
        const manifest = await image.manifest();
        // layer.tar holds the gzip blob: described as such, original digest.
        assert.ok(
          manifest.layers.every((layer) => layer.mediaType.includes("gzip")),
        );
      }
      sameBytes(await saved(entries), golden.expected, golden.name);
    });
  });
}

for (const golden of goldens) {
  test(`fromDockerArchive() reads golden "${golden.name}" saved as docker+oci with compressed layers to the golden bytes`, async () => {
    await withTemp("docker-save-archive-", async (dir) => {
      const path = join(dir, "docker-oci.tar");
      const archive = await saved(await goldenEntries(golden), {
        format: "docker+oci",
        layers: "compressed",
      });
      writeFileSync(path, archive);
      const members = await readTar(archive);
      assert.ok(members.some((member) => member.name === "index.json"));
      const entries = await archiveEntries(path, tagsOf(golden));
      for (const [, image] of entries) {
        // The OCI layout's manifest: no v1 directories to keep.
        assert.equal(await image.v1Form!(), undefined);
      }
      sameBytes(await saved(entries), golden.expected, golden.name);
    });
  });

  test(`fromDockerArchive() reads golden "${golden.name}" saved as docker+oci with plain layers`, async () => {
    await withTemp("docker-save-archive-", async (dir) => {
      const path = join(dir, "docker-oci-plain.tar");
      writeFileSync(
        path,
        await saved(await goldenEntries(golden), { format: "docker+oci" }),
      );
      const entries = await archiveEntries(path, tagsOf(golden));
      // New digests (plain blobs), so new v1 ids; the same config and layers.
      const out = await readTar(await saved(entries));
      const golden_ = await readTar(golden.expected);
      const parts = (members: TarMember[]) =>
        JSON.parse(memberText(members, "manifest.json")).map(
          (entry: { Config: string; Layers: string[] }) =>
            [entry.Config, ...entry.Layers].map((name) =>
              members.find((m) => m.name === name)!.data
            ),
        );
      assert.deepEqual(parts(out), parts(golden_));
    });
  });
}

test("fromDockerArchive() describes stored layers and keeps foreign LayerSources", async () => {
  const foreign = goldens.find((golden) => golden.name === "foreign")!;
  const image = await fromDockerArchive(
    `${foreign.dir}/expected.tar`,
    "oracle/foreign:v1",
  );
  const manifest = await image.manifest();
  const members = await readTar(foreign.expected);
  const entry = JSON.parse(memberText(members, "manifest.json"))[0];
  const [foreignLayer, ownLayer] = manifest.layers;
  assert.deepEqual(foreignLayer, Object.values(entry.LayerSources)[0]);
  const stored = members.find((m) => m.name === entry.Layers[1])!.data;
  assert.deepEqual(ownLayer, {
    mediaType: "application/vnd.docker.image.rootfs.diff.tar",
    size: stored.byteLength,
    digest: digestOf(stored),
  });
  assert.equal(
    await (await describeLayer(image, foreignLayer)).uncompressedSize(),
    members.find((m) => m.name === entry.Layers[0])!.data.byteLength,
  );
  // The foreign blob itself is not in an uncompressed archive.
  await assert.rejects(
    readAll(save([["a/b:c", image]], { layers: "compressed" })),
    {
      name: "DockerSaveError",
      code: "BLOB_NOT_FOUND",
      message:
        `Cannot open layer ${foreignLayer.digest} of docker archive "${foreign.dir}/expected.tar" tag "oracle/foreign:v1": the archive holds only its uncompressed layer.tar; save it with layers: "uncompressed"`,
    },
  );
});

test("fromDockerArchive() is lenient: no repositories, Parent, no LayerSources", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const members = (await readTar(basic.expected)).filter((member) =>
      member.name !== "repositories"
    );
    const manifest = JSON.parse(memberText(members, "manifest.json"));
    manifest[0].Parent = "";
    const path = join(dir, "lenient.tar");
    writeFileSync(
      path,
      await tar(
        members.map((member) =>
          member.name === "manifest.json"
            ? [member.name, JSON.stringify(manifest)]
            : [member.name, member.data]
        ),
      ),
    );
    const image = await fromDockerArchive(path);
    // The top id falls back to the last layer's, which it is here.
    sameBytes(
      await saved([["oracle/basic:v1", image]]),
      basic.expected,
      "basic",
    );
  });
});

/** The basic case's OCI layout blobs by hex. */
function basicBlobs(): Map<string, Uint8Array> {
  const dir = `${basic.dir}/oci/blobs/sha256`;
  return new Map(
    readdirSync(dir).map((
      hex,
    ) => [hex, new Uint8Array(readFileSync(`${dir}/${hex}`))]),
  );
}

function basicManifest(): {
  digest: string;
  size: number;
  value: {
    config: { digest: string };
    layers: { digest: string; mediaType: string; size: number }[];
  };
} {
  const index = JSON.parse(readFileSync(`${basic.dir}/oci/index.json`, "utf8"));
  const { digest, size } = index.manifests[0];
  const value = JSON.parse(
    readFileSync(`${basic.dir}/oci/blobs/sha256/${digest.slice(7)}`, "utf8"),
  );
  return { digest, size, value };
}

/**
 * Golden basic as docker ≥ 25 with the containerd store writes it: the
 * original blobs, `index.json` with `entries` (default: one entry naming the
 * manifest), and `manifest.json` pointing into `blobs/`; plus `extra` blobs.
 */
async function docker25Archive(
  entries?: unknown[],
  extra: Uint8Array[] = [],
): Promise<Uint8Array> {
  const blobs = basicBlobs();
  for (const bytes of extra) blobs.set(digestOf(bytes).slice(7), bytes);
  const { digest, size, value } = basicManifest();
  return await tar(
    [
      ...[...blobs].map(([hex, bytes]): [string, Uint8Array] => [
        `blobs/sha256/${hex}`,
        bytes,
      ]),
      [
        "index.json",
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: entries ?? [{
            mediaType: "application/vnd.docker.distribution.manifest.v2+json",
            digest,
            size,
            annotations: {
              "io.containerd.image.name": "docker.io/oracle/basic:v1",
              "org.opencontainers.image.ref.name": "v1",
            },
          }],
        }),
      ],
      [
        "manifest.json",
        JSON.stringify([{
          Config: `blobs/sha256/${value.config.digest.slice(7)}`,
          RepoTags: ["oracle/basic:v1"],
          Layers: value.layers.map((layer) =>
            `blobs/sha256/${layer.digest.slice(7)}`
          ),
        }]),
      ],
      ["oci-layout", '{"imageLayoutVersion": "1.0.0"}'],
      ["repositories", '{"oracle/basic":{"v1":"' + "0".repeat(64) + '"}}'],
    ],
    [
      { name: "blobs/", type: "directory" },
      { name: "blobs/sha256/", type: "directory" },
    ],
  );
}

test("fromDockerArchive() reads a docker ≥ 25 archive that keeps the original blobs", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const { digest } = basicManifest();
    const path = join(dir, "docker25.tar");
    writeFileSync(path, await docker25Archive());
    const image = await fromDockerArchive(path);
    // The original manifest, verbatim.
    sameBytes(
      await image.rawManifest(),
      basicBlobs().get(digest.slice(7))!,
      "manifest",
    );
    assert.equal(await image.v1Form!(), undefined);
    sameBytes(
      await saved([["oracle/basic:v1", image]]),
      basic.expected,
      "basic",
    );
  });
});

test("fromDockerArchive() prefers the OCI manifest whose annotations name its tag", async () => {
  const { digest, size, value } = basicManifest();
  // The same image described again, with other bytes, and unnamed.
  const other = encoder.encode(
    JSON.stringify({ ...value, annotations: { "x": "1" } }),
  );
  const mediaType = "application/vnd.docker.distribution.manifest.v2+json";
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "two-manifests.tar");
    writeFileSync(
      path,
      await docker25Archive([
        { mediaType, digest: digestOf(other), size: other.byteLength },
        {
          mediaType,
          digest,
          size,
          annotations: {
            "io.containerd.image.name": "docker.io/oracle/basic:v1",
          },
        },
      ], [other]),
    );
    const image = await fromDockerArchive(path);
    sameBytes(
      await image.rawManifest(),
      basicBlobs().get(digest.slice(7))!,
      "the named manifest",
    );
  });
});

test("fromDockerArchive() reads each blob of an index fan-out once", async () => {
  // index.json and 4 nested indexes, each listing the next one 64 times:
  // 64^5 paths to the manifest, a few blobs.
  const { digest, size } = basicManifest();
  const fanOut = 64;
  let next: unknown = {
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    digest,
    size,
  };
  const nested: Uint8Array[] = [];
  for (let level = 0; level < 4; level++) {
    const bytes = encoder.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: Array(fanOut).fill(next),
    }));
    nested.push(bytes);
    next = {
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: digestOf(bytes),
      size: bytes.byteLength,
    };
  }
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "fan-out.tar");
    const archive = await docker25Archive(Array(fanOut).fill(next), nested);
    assert.ok(archive.byteLength < 100_000, `${archive.byteLength} bytes`);
    writeFileSync(path, archive);
    const index = await indexDockerArchive(path);
    const count = countArchiveReads(index);
    const image = await fromDockerArchive(path, undefined, { index });
    // Each member read at most once.
    assert.ok(
      count.reads <= index.members.length,
      `${count.reads} reads of ${index.members.length} members`,
    );
    sameBytes(
      await image.rawManifest(),
      basicBlobs().get(digest.slice(7))!,
      "manifest",
    );
    sameBytes(
      await saved([["oracle/basic:v1", image]]),
      basic.expected,
      "basic",
    );
  });
});

/** Golden basic as docker 25 with a graph driver writes it: plain layers. */
async function plainLayerArchive(withV1Dirs: boolean): Promise<{
  archive: Uint8Array;
  manifest: Uint8Array;
}> {
  const golden = await readTar(basic.expected);
  const entry = JSON.parse(memberText(golden, "manifest.json"))[0];
  const config = golden.find((m) => m.name === entry.Config)!.data;
  const layers = (entry.Layers as string[]).map((name) =>
    golden.find((m) => m.name === name)!.data
  );
  const manifest = encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: digestOf(config),
      size: config.byteLength,
    },
    layers: layers.map((layer) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: digestOf(layer),
      size: layer.byteLength,
    })),
  }));
  const blob = (bytes: Uint8Array) =>
    `blobs/sha256/${digestOf(bytes).slice(7)}`;
  const files: [string, Uint8Array | string][] = [
    ...[config, manifest, ...layers].map((bytes): [string, Uint8Array] => [
      blob(bytes),
      bytes,
    ]),
    [
      "index.json",
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: digestOf(manifest),
          size: manifest.byteLength,
        }],
      }),
    ],
    ["oci-layout", '{"imageLayoutVersion": "1.0.0"}'],
    [
      "manifest.json",
      JSON.stringify([{
        Config: blob(config),
        RepoTags: ["oracle/basic:v1"],
        Layers: withV1Dirs ? entry.Layers : layers.map(blob),
      }]),
    ],
  ];
  const links: { name: string; type: "symlink"; linkname: string }[] = [];
  if (withV1Dirs) {
    files.push(["repositories", memberText(golden, "repositories")]);
    for (const [i, name] of (entry.Layers as string[]).entries()) {
      const id = name.split("/")[0];
      files.push([
        `${id}/json`,
        golden.find((m) => m.name === `${id}/json`)!.data,
      ]);
      files.push([`${id}/VERSION`, "1.0"]);
      links.push({
        name: `${id}/layer.tar`,
        type: "symlink",
        linkname: `../${blob(layers[i])}`,
      });
    }
  }
  return { archive: await tar(files, links), manifest };
}

test("fromDockerArchive() reads a docker ≥ 25 archive of plain layers", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "docker25-plain.tar");
    const { archive, manifest } = await plainLayerArchive(false);
    writeFileSync(path, archive);
    const image = await fromDockerArchive(path, "oracle/basic:v1");
    sameBytes(await image.rawManifest(), manifest, "manifest");
    // v1 ids now hash the plain layers' digests, but every layer.tar and the
    // config are the golden ones.
    const out = await readTar(await saved([["oracle/basic:v1", image]]));
    const golden = await readTar(basic.expected);
    const layersOf = (members: TarMember[]) => {
      const entry = JSON.parse(memberText(members, "manifest.json"))[0];
      return [entry.Config, ...entry.Layers].map((name: string) =>
        members.find((m) => m.name === name)!.data
      );
    };
    assert.deepEqual(layersOf(out), layersOf(golden));
  });
});

test("fromDockerArchive() keeps v1 directories whose layer.tar links into blobs/", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "docker25-v1.tar");
    writeFileSync(path, (await plainLayerArchive(true)).archive);
    const image = await fromDockerArchive(path, "oracle/basic:v1");
    sameBytes(
      await saved([["oracle/basic:v1", image]]),
      basic.expected,
      "basic",
    );
  });
});

test(
  "fromDockerArchive() merges two archives into one tarball that skopeo reads",
  { skip, timeout: TOOL_TIMEOUT },
  async () => {
    requireSkopeo();
    const cases = ["basic", "empty-layers"].map((name) =>
      goldens.find((golden) => golden.name === name)!
    );
    const entries: [string, Image][] = [];
    for (const golden of cases) {
      entries.push(
        ...await archiveEntries(`${golden.dir}/expected.tar`, tagsOf(golden)),
      );
    }
    const out = await saved(entries);
    const members = await readTar(out);
    const names = members.map((member) => member.name);
    const layerNames = names.filter((name) => name.endsWith("/layer.tar"));
    assert.equal(new Set(layerNames).size, layerNames.length, "a layer twice");
    const manifest = JSON.parse(memberText(members, "manifest.json"));
    const shared = manifest[0].Layers.filter((name: string) =>
      manifest[1].Layers.includes(name)
    );
    assert.ok(shared.length > 0, "the two cases share a base layer");
    for (const name of shared) {
      assert.equal(names.filter((n) => n === name).length, 1);
    }
    await withTemp("docker-save-archive-", async (dir) => {
      const path = join(dir, "merged.tar");
      writeFileSync(path, out);
      for (const [i, [tag]] of entries.entries()) {
        const target = join(dir, `dir-${i}`);
        await skopeo([
          "--insecure-policy",
          "copy",
          "--quiet",
          `docker-archive:${path}:${tag}`,
          `dir:${target}`,
        ]);
        const copied = JSON.parse(
          await readFile(join(target, "manifest.json"), "utf8"),
        );
        const ours = manifest.find((entry: { RepoTags: string[] }) =>
          entry.RepoTags.includes(tag)
        );
        assert.equal(copied.layers.length, ours.Layers.length, tag);
        assert.equal(
          copied.config.digest,
          `sha256:${ours.Config.replace(/\.json$/, "")}`,
        );
      }
    });
  },
);

function archiveError(code: string, message: string) {
  return { name: "DockerSaveError", code, message };
}

test("fromDockerArchive() rejects bad archives with clear errors", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const missing = join(dir, "missing.tar");
    await assert.rejects(
      fromDockerArchive(missing),
      archiveError(
        "BAD_LAYOUT",
        `Cannot read docker archive "${missing}": no such file`,
      ),
    );

    await assert.rejects(fromDockerArchive(dir), {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message: new RegExp(`^Cannot read docker archive "${dir}": .+`),
    });

    const notTar = join(dir, "not.tar");
    writeFileSync(notTar, "x".repeat(2048));
    await assert.rejects(
      fromDockerArchive(notTar),
      {
        name: "DockerSaveError",
        code: "BAD_LAYOUT",
        message: new RegExp(
          `^Cannot read docker archive "${notTar}": it is not a valid tar archive \\(.+\\)$`,
        ),
      },
    );

    const truncated = join(dir, "truncated.tar");
    writeFileSync(truncated, basic.expected.subarray(0, 20000));
    await assert.rejects(
      fromDockerArchive(truncated),
      archiveError(
        "BAD_LAYOUT",
        `Cannot read docker archive "${truncated}": it is not a valid tar archive (Tar archive is truncated.)`,
      ),
    );

    const noManifest = join(dir, "no-manifest.tar");
    writeFileSync(noManifest, await tar([["hello.txt", "hi"]]));
    await assert.rejects(
      fromDockerArchive(noManifest),
      archiveError(
        "BAD_LAYOUT",
        `Cannot read docker archive "${noManifest}": it has no manifest.json`,
      ),
    );

    const ociOnly = join(dir, "oci-only.tar");
    writeFileSync(
      ociOnly,
      await tar([["oci-layout", "{}"], ["index.json", "{}"]]),
    );
    await assert.rejects(
      fromDockerArchive(ociOnly),
      archiveError(
        "BAD_LAYOUT",
        `Cannot read docker archive "${ociOnly}": it has no manifest.json (it is an OCI layout: read it with fromOciArchive)`,
      ),
    );

    const members = await readTar(basic.expected);
    const entry = JSON.parse(memberText(members, "manifest.json"))[0];
    const noLayer = join(dir, "no-layer.tar");
    writeFileSync(
      noLayer,
      await tar(
        members.filter((m) => m.name !== entry.Layers[1]).map((m) => [
          m.name,
          m.data,
        ]),
      ),
    );
    await assert.rejects(
      fromDockerArchive(noLayer),
      archiveError(
        "BLOB_NOT_FOUND",
        `Cannot read docker archive "${noLayer}": manifest.json names layer "${
          entry.Layers[1]
        }" but the archive has no such member`,
      ),
    );
    const noConfig = join(dir, "no-config.tar");
    writeFileSync(
      noConfig,
      await tar(
        members.filter((m) => m.name !== entry.Config).map((m) => [
          m.name,
          m.data,
        ]),
      ),
    );
    await assert.rejects(
      fromDockerArchive(noConfig, "oracle/basic:v1"),
      archiveError(
        "BLOB_NOT_FOUND",
        `Cannot read docker archive "${noConfig}" tag "oracle/basic:v1": manifest.json names config "${entry.Config}" but the archive has no such member`,
      ),
    );

    const basicPath = `${basic.dir}/expected.tar`;
    await assert.rejects(
      fromDockerArchive(basicPath, "oracle/other:v1"),
      archiveError(
        "BAD_LAYOUT",
        `Cannot choose an image from docker archive "${basicPath}": no manifest.json entry has the tag "oracle/other:v1" (tags: "oracle/basic:v1")`,
      ),
    );
    const two = goldens.find((g) => g.name === "same-image-two-tags")!;
    const twoPath = `${two.dir}/expected.tar`;
    await assert.rejects(
      fromDockerArchive(twoPath),
      archiveError(
        "BAD_LAYOUT",
        `Cannot choose an image from docker archive "${twoPath}": manifest.json has 2 entries, give a tag (tags: "oracle/one:v1", "another/repo:v2")`,
      ),
    );
  });
});

const MiB = 1024 * 1024;

/** JSON text padded with spaces to `size` bytes: valid, only too big. */
function padded(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size).fill(0x20);
  out.set(bytes);
  return out;
}

test("fromDockerArchive() refuses a JSON member over 4 MiB without reading it", async () => {
  const members = await readTar(basic.expected);
  const entry = JSON.parse(memberText(members, "manifest.json"))[0];
  const v1Json = `${entry.Layers[0].split("/")[0]}/json`;
  await withTemp("docker-save-archive-", async (dir) => {
    for (
      const name of [entry.Config, "manifest.json", v1Json, "repositories"]
    ) {
      const archive = await tar(members.map((m) => [
        m.name,
        m.name === name ? padded(m.data, 5 * MiB) : m.data,
      ]));
      for (const gzip of [false, true]) {
        const path = join(dir, gzip ? "big.tar.gz" : "big.tar");
        writeFileSync(path, gzip ? gzipSync(archive) : archive);
        const index = await indexDockerArchive(path);
        assert.equal(index.get(name)!.data, undefined, `${name} is not kept`);
        const count = countArchiveReads(index);
        await assert.rejects(
          fromDockerArchive(path, "oracle/basic:v1", { index }),
          archiveError(
            "BAD_LAYOUT",
            `Cannot read "${name}" of docker archive "${path}": it has ${
              5 * MiB
            } bytes, more than the 4194304 a JSON member may have`,
          ),
        );
        // Only the small members before it were read.
        assert.ok(
          count.bytes < 64 * 1024,
          `${name}: ${count.bytes} bytes read`,
        );
      }
    }
  });
});

test("fromDockerArchive() keeps at most 8 MiB of an archive's JSON members in memory", async () => {
  // Twelve 1 MiB JSON-looking members beside golden basic's.
  const members = await readTar(basic.expected);
  const filler = Array.from({ length: 12 }, (_, i): [string, Uint8Array] => [
    `filler/${i}.json`,
    padded(encoder.encode(`{"filler": ${i}}`), MiB),
  ]);
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "filler.tar.gz");
    writeFileSync(
      path,
      gzipSync(
        await tar([
          ...filler,
          ...members.map((m): [string, Uint8Array] => [
            m.name,
            m.data,
          ]),
        ]),
      ),
    );
    const index = await indexDockerArchive(path);
    const kept = index.members.reduce(
      (sum, member) => sum + (member.data?.byteLength ?? 0),
      0,
    );
    assert.ok(kept <= 8 * MiB, `${kept} bytes kept`);
    // What is not kept is read again when needed: the same image.
    const image = await fromDockerArchive(path, undefined, { index });
    sameBytes(
      await saved([["oracle/basic:v1", image]]),
      basic.expected,
      "basic",
    );
  });
});

test("fromDockerArchive() reports a layer.tar that does not match its diff_id while streaming", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const members = await readTar(basic.expected);
    const entry = JSON.parse(memberText(members, "manifest.json"))[0];
    const path = join(dir, "corrupt.tar");
    writeFileSync(
      path,
      await tar(members.map((m) => {
        if (m.name !== entry.Layers[0]) return [m.name, m.data];
        const data = m.data.slice();
        data[600] ^= 1;
        return [m.name, data];
      })),
    );
    const image = await fromDockerArchive(path);
    await assert.rejects(readAll(save([["oracle/basic:v1", image]])), {
      name: "DockerSaveError",
      code: "DIFF_ID_MISMATCH",
    });
  });
});

test("fromDockerArchive() errors the save stream when the archive is cut short after indexing", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "cut.tar");
    writeFileSync(path, basic.expected);
    const image = await fromDockerArchive(path);
    const members = await readTar(basic.expected);
    const entry = JSON.parse(memberText(members, "manifest.json"))[0];
    const index = await indexDockerArchive(path);
    const cut = index.get(entry.Layers[1])!;
    writeFileSync(path, basic.expected.subarray(0, cut.offset! + 100));
    await assert.rejects(readAll(save([["oracle/basic:v1", image]])), {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message: `Cannot read "${
        entry.Layers[1]
      }" of docker archive "${path}": file "${path}" ends ${
        cut.size - 100
      } bytes before the range does`,
    });
  });
});

/** Wraps a file system, recording opens and cancels. */
function spyFs(base: ArchiveFileSystem) {
  const spy = {
    opens: [] as { path: string; range?: ByteRange }[],
    cancels: 0,
    closes: 0,
    fs: {
      openRead: async (path: string, range?: ByteRange) => {
        spy.opens.push(range ? { path, range } : { path });
        const reader = (await base.openRead(path, range)).getReader();
        // Each stream ends once: read to its end, or cancelled.
        let ended = false;
        const end = (how: "closes" | "cancels") => {
          if (!ended) spy[how]++;
          ended = true;
        };
        return new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (ended) return;
            if (done) {
              end("closes");
              controller.close();
            } else controller.enqueue(value);
          },
          cancel(reason) {
            end("cancels");
            return reader.cancel(reason);
          },
        }, { highWaterMark: 0 });
      },
    } satisfies ArchiveFileSystem,
  };
  return spy;
}

/** A deterministic layer tar with one file of `size` pseudo-random bytes. */
function bigLayerTar(size: number): Promise<Uint8Array> {
  const data = new Uint8Array(size);
  let x = 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  return packTar([{
    header: { name: "big.bin", size, mtime: new Date(0) },
    body: data,
  }]);
}

test("fromDockerArchive() streams a layer from its offset, in chunks, cancellably", async () => {
  const layer = await bigLayerTar(3 * 1024 * 1024 + 123);
  const built = await buildImage({ layers: [layer], mediaTypes: "docker" });
  const archive = await saved([["big/layer:v1", built]]);
  const offset = Buffer.from(archive).indexOf(Buffer.from(layer));
  assert.ok(offset > 0 && offset % 512 === 0);
  await withTemp("docker-save-archive-", async (dir) => {
    for (const gzip of [false, true]) {
      const path = join(dir, gzip ? "big.tar.gz" : "big.tar");
      writeFileSync(path, gzip ? gzipSync(archive) : archive);
      const spy = spyFs((await nodeArchiveFileSystem())!);
      const index = await indexDockerArchive(path, { fs: spy.fs });
      const member = index.members.find((m) => m.name.endsWith("/layer.tar"))!;
      assert.equal(member.offset, offset);
      assert.equal(member.headerOffset, offset - 512);
      assert.equal(member.digest, digestOf(layer));
      assert.equal(member.data, undefined, "a layer is never kept");

      const image = await fromDockerArchive(path, undefined, {
        fs: spy.fs,
        index,
      });
      const [descriptor] = (await image.manifest()).layers;
      assert.equal(descriptor.digest, digestOf(layer));
      const described = await describeLayer(image, descriptor);
      assert.equal(await described.uncompressedSize(), layer.byteLength);

      spy.opens.length = 0;
      const reader = (await described.uncompressed!.open(0)).getReader();
      // A gzip archive was gunzipped once, into a spool, while indexed:
      // its layers are read from there, the archive is not opened again.
      assert.deepEqual(
        spy.opens,
        gzip ? [] : [{
          path,
          range: { start: offset, length: layer.byteLength },
        }],
      );
      const chunks: Uint8Array[] = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        assert.ok(value.byteLength <= 256 * 1024, "a chunk, not the layer");
        chunks.push(value);
      }
      assert.ok(chunks.length > 8);
      sameBytes(new Uint8Array(Buffer.concat(chunks)), layer, "layer");

      const { cancels, closes } = spy;
      const partial = (await image.openLayer(descriptor)).getReader();
      assert.ok(!(await partial.read()).done);
      await partial.cancel();
      // The file is done with once cancel() resolves (gzip: the spool).
      assert.equal(spy.cancels + spy.closes, cancels + closes + (gzip ? 0 : 1));
      if (!gzip) assert.equal(spy.cancels, cancels + 1, "cancelled");

      // And through save(): the same tarball.
      sameBytes(
        await saved([["big/layer:v1", image]]),
        archive,
        gzip ? "gzip archive" : "archive",
      );
    }
  });
});

test("parseDockerArchiveSource() splits FILE[:TAG][=NEWTAG] at the longest existing file", async () => {
  await withTemp("docker-save-archive-", async (dir) => {
    const file = join(dir, "a:b=c.tar");
    writeFileSync(file, "");
    const prefix = "docker-archive:";
    assert.deepEqual(await parseDockerArchiveSource(`${prefix}${file}`), {
      path: file,
    });
    assert.deepEqual(
      await parseDockerArchiveSource(`${prefix}${file}:app:v1=new/app:v2`),
      { path: file, tag: "app:v1", newTag: "new/app:v2" },
    );
    assert.deepEqual(
      await parseDockerArchiveSource(`${prefix}${file}=localhost:5000/ab:1`),
      { path: file, newTag: "localhost:5000/ab:1" },
    );
    assert.deepEqual(
      await parseDockerArchiveSource(`${prefix}${file}:app:v1`),
      { path: file, tag: "app:v1" },
    );
    await assert.rejects(
      parseDockerArchiveSource(`${prefix}${dir}/nope.tar:app:v1`),
      archiveError(
        "BAD_LAYOUT",
        `Cannot read source "${prefix}${dir}/nope.tar:app:v1": no such file`,
      ),
    );
    await assert.rejects(
      parseDockerArchiveSource(`${prefix}${file}=Bad:Tag`),
      { name: "DockerSaveError", code: "BAD_TAG" },
    );
    await assert.rejects(parseDockerArchiveSource(`oci:${file}`), {
      name: "TypeError",
    });
  });
});

test("fromDockerArchive() errors are DockerSaveErrors", async () => {
  const error = await fromDockerArchive("/nonexistent/x.tar").catch((e) => e);
  assert.ok(error instanceof DockerSaveError);
  // The gzip magic alone is not an archive.
  await withTemp("docker-save-archive-", async (dir) => {
    const path = join(dir, "bad.tar.gz");
    writeFileSync(path, gzipSync(encoder.encode("not a tar")).subarray(0, 12));
    const bad = await fromDockerArchive(path).catch((e) => e);
    assert.ok(bad instanceof DockerSaveError, String(bad));
    assert.equal(bad.code, "BAD_LAYOUT");
  });
  assert.equal(decoder.decode(gunzipSync(gzipSync(encoder.encode("x")))), "x");
});
