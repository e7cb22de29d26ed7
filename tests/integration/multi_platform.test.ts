/**
 * Multi-platform save: an image index (two platforms and a buildx-style
 * attestation) written with every child, the index kept byte for byte where
 * nothing changes, checked by the layout's own rules and by skopeo.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import {
  DockerSaveError,
  type Image,
  type ImageIndex,
  save,
  type SaveOptions,
  saveResponse,
  selectPlatforms,
} from "../../mod.ts";
import { indexOver } from "../../src/model/image_index.ts";
import { readAll } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { fixture, platformImage } from "../_kit/multi_platform.ts";
import {
  requireSkopeo,
  skopeo,
  skopeoSkip as skipSkopeo,
} from "../_kit/skopeo.ts";
import { readTar, type TarMember } from "../_kit/tar.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";
import { MEDIA } from "../_kit/format.ts";

const TAG = "example.com/multi/app:v1";

function member(members: TarMember[], name: string): Uint8Array {
  const found = members.find((m) => m.name === name);
  assert.ok(found, `no member ${name}`);
  return found.data;
}

function json(bytes: Uint8Array) {
  return JSON.parse(new TextDecoder().decode(bytes));
}

const blobPath = (digest: string) => `blobs/sha256/${digest.slice(7)}`;

// The OCI layout's rules: every blob is named by its sha256, and everything
// index.json reaches (indexes, manifests, configs, layers) is there.
function assertCompleteLayout(members: TarMember[]): void {
  for (const m of members.filter((m) => m.name.startsWith("blobs/"))) {
    assert.equal(blobPath(digestOf(m.data)), m.name, "blob named by its hash");
  }
  const visit = (descriptor: { digest: string; size: number }) => {
    const bytes = member(members, blobPath(descriptor.digest));
    assert.equal(bytes.byteLength, descriptor.size);
    const value = json(bytes);
    for (const child of value.manifests ?? []) visit(child);
    if (value.config) member(members, blobPath(value.config.digest));
    for (const layer of value.layers ?? []) {
      assert.equal(
        member(members, blobPath(layer.digest)).byteLength,
        layer.size,
      );
    }
  };
  for (const entry of json(member(members, "index.json")).manifests) {
    visit(entry);
  }
}

test("save() writes an index with every child, byte for byte, in compressed oci and docker+oci", async () => {
  const { amd64, arm64, index } = await fixture();
  const raw = await index.rawIndex();
  for (const format of ["oci", "docker+oci"] as const) {
    const tar = await readAll(
      save([[TAG, index]], { format, layers: "compressed" }),
    );
    const members = await readTar(tar);
    assertCompleteLayout(members);
    const [entry] = json(member(members, "index.json")).manifests;
    assert.equal(entry.mediaType, MEDIA.ociIndex);
    assert.equal(entry.digest, digestOf(raw), "the index keeps its digest");
    assert.deepEqual(member(members, blobPath(entry.digest)), raw);
    assert.equal(
      entry.annotations["org.opencontainers.image.ref.name"],
      TAG,
    );
    // Each child manifest as the source has it, the attestation included.
    for (const child of json(raw).manifests) {
      member(members, blobPath(child.digest));
    }
    if (format === "docker+oci") {
      // Classic loaders get linux/amd64 by default, or the one asked for.
      const configOf = async (image: Image) =>
        blobPath((await image.manifest()).config.digest);
      const [loaded] = json(member(members, "manifest.json"));
      assert.equal(loaded.Config, await configOf(amd64));
      assert.deepEqual(loaded.RepoTags, [TAG]);
      const arm = await readTar(
        await readAll(save([[TAG, index]], {
          format,
          layers: "compressed",
          defaultPlatform: "linux/arm64",
        })),
      );
      assert.equal(
        json(member(arm, "manifest.json"))[0].Config,
        await configOf(arm64),
      );
    }
  }
});

test("save() writes an index of uncompressed layers with its children's manifests and the index rewritten", async () => {
  const { index } = await fixture();
  const members = await readTar(
    await readAll(save([[TAG, index]], { format: "oci" })),
  );
  assertCompleteLayout(members);
  const [entry] = json(member(members, "index.json")).manifests;
  assert.notEqual(entry.digest, digestOf(await index.rawIndex()));
  const written = json(member(members, blobPath(entry.digest)));
  const platforms = written.manifests.map((m: { platform: unknown }) =>
    m.platform
  );
  assert.deepEqual(
    platforms,
    json(await index.rawIndex()).manifests.map(
      (m: { platform: unknown }) => m.platform,
    ),
  );
  // The images' layers are tars now, named by their diff_ids; the
  // attestation is copied as it is.
  for (const child of written.manifests.slice(0, 2)) {
    const manifest = json(member(members, blobPath(child.digest)));
    const config = json(member(members, blobPath(manifest.config.digest)));
    assert.deepEqual(
      manifest.layers.map((l: { digest: string }) => l.digest),
      config.rootfs.diff_ids,
    );
  }
  assert.equal(
    written.manifests[2].digest,
    json(await index.rawIndex()).manifests[2].digest,
  );
});

test("save() refuses an index of several platforms in the docker format before any byte", async () => {
  const { index } = await fixture();
  const reader = save([[TAG, index]]).getReader();
  await assert.rejects(
    reader.read(),
    (error: unknown) =>
      error instanceof DockerSaveError &&
      error.code === "UNSUPPORTED_FORMAT" &&
      /linux\/amd64, linux\/arm64\/v8/.test(error.message),
  );
});

test("selectPlatforms() keeps a list, and one platform saves as that image does", async () => {
  const { arm64, index } = await fixture();
  const one = await selectPlatforms(index, ["linux/arm64"]);
  assert.equal((await one.index()).manifests.length, 1);
  assert.notEqual(
    digestOf(await one.rawIndex()),
    digestOf(await index.rawIndex()),
  );
  // The docker format takes an index of one image: the same bytes as the
  // image itself.
  assert.ok(
    Buffer.from(await readAll(save([[TAG, one]]))).equals(
      Buffer.from(await readAll(save([[TAG, arm64]]))),
    ),
  );
  // "all" keeps the index itself; a platform it lacks is named.
  assert.equal(await selectPlatforms(index, "all"), index);
  await assert.rejects(
    selectPlatforms(index, ["linux/s390x"]),
    (error: unknown) =>
      error instanceof DockerSaveError && error.code === "PLATFORM_NOT_FOUND" &&
      /linux\/s390x/.test(error.message),
  );
});

test("an index whose children are not all held fails with the missing platforms; available keeps the rest", async () => {
  const { index } = await fixture();
  const parsed = await index.index();
  // As a containerd-store `docker save` writes it: only amd64's blobs.
  const partial: ImageIndex = {
    rawIndex: () => index.rawIndex(),
    index: () => index.index(),
    child: (entry) =>
      entry.platform?.architecture === "amd64"
        ? index.child(entry)
        : Promise.resolve(undefined),
  };
  await assert.rejects(
    readAll(save([[TAG, partial]], { format: "oci", layers: "compressed" })),
    (error: unknown) =>
      error instanceof DockerSaveError && error.code === "PLATFORM_NOT_FOUND" &&
      /linux\/arm64\/v8, unknown/.test(error.message),
  );
  await assert.rejects(
    selectPlatforms(partial, "all"),
    (error: unknown) =>
      error instanceof DockerSaveError && error.code === "PLATFORM_NOT_FOUND",
  );
  const available = await selectPlatforms(partial, "available");
  assert.deepEqual(
    (await available.index()).manifests,
    parsed.manifests.filter((m) => m.platform?.architecture === "amd64"),
  );
  assertCompleteLayout(
    await readTar(
      await readAll(
        save([[TAG, available]], { format: "oci", layers: "compressed" }),
      ),
    ),
  );
});

test("an index child whose bytes are not what the index names fails with DIGEST_MISMATCH", async () => {
  const { index } = await fixture();
  const parsed = await index.index();
  const tampered = indexOver(
    parsed,
    async (entry) =>
      entry.platform?.architecture === "arm64"
        ? await platformImage("arm64", "v7")
        : await index.child(entry),
  );
  await assert.rejects(
    readAll(save([[TAG, tampered]], { format: "oci", layers: "compressed" })),
    (error: unknown) =>
      error instanceof DockerSaveError && error.code === "DIGEST_MISMATCH",
  );
});

test("saveResponse() serves ranges of a multi-platform tarball as slices of the whole", async () => {
  const { index } = await fixture();
  const options: SaveOptions = { format: "docker+oci", layers: "compressed" };
  const full = await readAll(save([[TAG, index]], options));
  for (const start of [0, 700, 3000, full.byteLength - 1500]) {
    const response = await saveResponse(
      new Request("http://127.0.0.1/", {
        headers: { range: `bytes=${start}-${start + 999}` },
      }),
      [[TAG, index]],
      options,
    );
    assert.equal(response.status, 206);
    const body = new Uint8Array(await response.arrayBuffer());
    assert.ok(
      Buffer.from(body).equals(
        Buffer.from(full.subarray(start, start + 1000)),
      ),
    );
  }
});

test(
  "skopeo copies every platform of our multi-platform tarball and gets the index's digest",
  {
    skip: skipSkopeo,
    timeout: TOOL_TIMEOUT,
  },
  async () => {
    requireSkopeo();
    const { index } = await fixture();
    await withTemp("multi-skopeo-", async (dir) => {
      for (const layers of ["compressed", "uncompressed"] as const) {
        const out = `${dir}/${layers}.tar`;
        writeFileSync(
          out,
          await readAll(save([[TAG, index]], { format: "oci", layers })),
        );
        const copy = `${dir}/copy-${layers}`;
        await skopeo([
          "copy",
          "--all",
          `oci-archive:${out}:${TAG}`,
          `oci:${copy}:app`,
        ]);
        const written = json(
          (await readTar(readFileSync(out))).find((m) =>
            m.name === "index.json"
          )!.data,
        ).manifests[0].digest;
        const copied = JSON.parse(readFileSync(`${copy}/index.json`, "utf8"))
          .manifests[0].digest;
        // Read back: every platform, each blob re-hashed by skopeo.
        const platformsOf = (bytes: Uint8Array) =>
          json(bytes).manifests.map((m: { platform: unknown }) => m.platform);
        assert.deepEqual(
          platformsOf(readFileSync(`${copy}/blobs/sha256/${copied.slice(7)}`)),
          platformsOf(await index.rawIndex()),
        );
        if (layers === "compressed") {
          // Nothing to change: skopeo keeps the source index's digest.
          assert.equal(copied, written);
          assert.equal(copied, digestOf(await index.rawIndex()));
        }
      }
    });
  },
);
