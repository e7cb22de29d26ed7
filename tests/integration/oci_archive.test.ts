/**
 * fromOciArchive(): a tar of each golden OCI layout saves to the golden
 * bytes (plain, gzip-compressed, `./`-prefixed names, nested platform index),
 * skopeo's oci-archive output is read, bad archives fail clearly; and the
 * archive index reads a member whose offset it does not know.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";

import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  fromOciArchive,
  type Image,
  indexOciArchive,
  save,
} from "../../mod.ts";
import { parseOciArchiveSource } from "../../src/sources/archive/oci_archive.ts";
import { indexArchive } from "../../src/sources/archive/archive_index.ts";
import { readAll, sameBytes } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { goldenCases } from "../_kit/golden.ts";
import { layoutFiles, layoutTar } from "../_kit/layout.ts";
import { requireSkopeo, skopeo, skopeoSkip as skip } from "../_kit/skopeo.ts";
import { memberText, readTar, type TarMember } from "../_kit/tar.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";

const encoder = new TextEncoder();

const goldens = goldenCases();
const basic = goldens.find((golden) => golden.name === "basic")!;
const two = goldens.find((golden) => golden.name === "same-image-two-tags")!;

for (const golden of goldens) {
  for (const variant of ["plain", "gzip", "./-prefixed"] as const) {
    test(`fromOciArchive() reads golden "${golden.name}" (${variant}) to the golden bytes`, async () => {
      await withTemp("docker-save-oci-archive-", async (dir) => {
        let archive = await layoutTar(
          layoutFiles(`${golden.dir}/oci`),
          variant === "./-prefixed",
        );
        if (variant === "gzip") archive = gzipSync(archive);
        const path = join(dir, "oci.tar");
        writeFileSync(path, archive);
        const index = await indexOciArchive(path);
        const entries: [string, Image][] = [];
        for (const { ref, tag } of golden.save) {
          entries.push([tag, await fromOciArchive(path, ref, { index })]);
        }
        sameBytes(
          await readAll(save(entries)),
          golden.expected,
          golden.name,
        );
      });
    });
  }
}

test("fromOciArchive() takes the only entry without a ref", async () => {
  await withTemp("docker-save-oci-archive-", async (dir) => {
    const path = join(dir, "basic.tar");
    writeFileSync(path, await layoutTar(layoutFiles(`${basic.dir}/oci`)));
    const image = await fromOciArchive(path);
    sameBytes(
      await readAll(save([["oracle/basic:v1", image]])),
      basic.expected,
      "basic",
    );
  });
});

/** One archive: a nested index with basic for amd64, "one" for arm64/v8. */
function multiPlatformArchive(): Promise<Uint8Array> {
  const manifestOf = (dir: string) =>
    JSON.parse(readFileSync(`${dir}/oci/index.json`, "utf8")).manifests[0];
  const nested = encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        ...manifestOf(two.dir),
        annotations: undefined,
        platform: { os: "linux", architecture: "arm64", variant: "v8" },
      },
      {
        ...manifestOf(basic.dir),
        annotations: undefined,
        platform: { os: "linux", architecture: "amd64" },
      },
    ],
  }));
  const files = new Map([
    ...layoutFiles(`${basic.dir}/oci`),
    ...layoutFiles(`${two.dir}/oci`),
  ]);
  files.set(`blobs/sha256/${digestOf(nested).slice(7)}`, nested);
  files.set(
    "index.json",
    encoder.encode(JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: digestOf(nested),
        size: nested.byteLength,
        annotations: { "org.opencontainers.image.ref.name": "multi" },
      }],
    })),
  );
  return layoutTar([...files]);
}

test("fromOciArchive() resolves a nested index by platform", async () => {
  await withTemp("docker-save-oci-archive-", async (dir) => {
    const path = join(dir, "multi.tar");
    writeFileSync(path, await multiPlatformArchive());
    const index = await indexOciArchive(path);
    const amd64 = await fromOciArchive(path, "multi", { index });
    sameBytes(
      await readAll(save([["oracle/basic:v1", amd64]])),
      basic.expected,
      "linux/amd64",
    );
    const arm64 = await fromOciArchive(path, undefined, {
      index,
      platform: "linux/arm64",
    });
    sameBytes(
      await readAll(
        save([["oracle/one:v1", arm64], ["another/repo:v2", arm64]]),
      ),
      two.expected,
      "linux/arm64",
    );
    await assert.rejects(
      fromOciArchive(path, "multi", { index, platform: "linux/s390x" }),
      {
        name: "DockerSaveError",
        code: "PLATFORM_NOT_FOUND",
        message:
          `Cannot choose platform linux/s390x from OCI archive "${path}" ref "multi": it has linux/arm64/v8, linux/amd64`,
      },
    );
  });
});

test("fromOciArchive() rejects bad archives with clear errors", async () => {
  await withTemp("docker-save-oci-archive-", async (dir) => {
    const files = layoutFiles(`${basic.dir}/oci`);
    const path = join(dir, "basic.tar");
    writeFileSync(path, await layoutTar(files));
    await assert.rejects(fromOciArchive(path, "nope"), {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message:
        `Cannot choose an image from OCI archive "${path}" ref "nope": 0 entries have that ref (refs: "basic")`,
    });

    const noLayout = join(dir, "no-layout.tar");
    writeFileSync(
      noLayout,
      await layoutTar(files.filter(([name]) => name !== "oci-layout")),
    );
    await assert.rejects(fromOciArchive(noLayout), {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message: `Cannot read OCI archive "${noLayout}": oci-layout is missing`,
    });

    const manifest = JSON.parse(
      readFileSync(`${basic.dir}/oci/index.json`, "utf8"),
    ).manifests[0];
    const layer = JSON.parse(
      readFileSync(
        `${basic.dir}/oci/blobs/sha256/${manifest.digest.slice(7)}`,
        "utf8",
      ),
    ).layers[1];
    const noBlob = join(dir, "no-blob.tar");
    writeFileSync(
      noBlob,
      await layoutTar(
        files.filter(([name]) =>
          name !== `blobs/sha256/${layer.digest.slice(7)}`
        ),
      ),
    );
    const image = await fromOciArchive(noBlob);
    await assert.rejects(readAll(save([["oracle/basic:v1", image]])), {
      name: "DockerSaveError",
      code: "BLOB_NOT_FOUND",
      message:
        `Cannot open blob ${layer.digest} of OCI archive "${noBlob}": no such file`,
    });

    const missing = join(dir, "missing.tar");
    await assert.rejects(fromOciArchive(missing), {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message: `Cannot read OCI archive "${missing}": no such file`,
    });
  });
});

test("ArchiveIndex knows every member's offsets and reads its bytes from there", async () => {
  await withTemp("docker-save-oci-archive-", async (dir) => {
    for (const gzip of [false, true]) {
      const path = join(dir, gzip ? "basic.tar.gz" : "basic.tar");
      writeFileSync(path, gzip ? gzipSync(basic.expected) : basic.expected);
      const index = await indexArchive(path);
      const members = await readTar(basic.expected);
      for (const member of index.members) {
        const expected = members[member.index].data;
        // Every member here has a plain ustar header just before its body.
        assert.equal(member.headerOffset, member.offset - 512);
        sameBytes(
          basic.expected.subarray(member.offset, member.offset + member.size),
          expected,
          `${member.name} at its offset`,
        );
        sameBytes(await index.read(member), expected, member.name);
        delete member.data;
        sameBytes(await index.read(member), expected, `${member.name} (read)`);
      }
    }
  });
});

test("parseOciArchiveSource() splits FILE[:REF][=TAG] at the longest existing file", async () => {
  await withTemp("docker-save-oci-archive-", async (dir) => {
    const file = join(dir, "x:y.tar");
    writeFileSync(file, "");
    const prefix = "oci-archive:";
    assert.deepEqual(await parseOciArchiveSource(`${prefix}${file}`), {
      path: file,
    });
    assert.deepEqual(
      await parseOciArchiveSource(`${prefix}${file}:app=example.com/app:v1`),
      { path: file, ref: "app", newTag: "example.com/app:v1" },
    );
    assert.deepEqual(
      await parseOciArchiveSource(`${prefix}${file}=app:v1`),
      { path: file, newTag: "app:v1" },
    );
    await assert.rejects(
      parseOciArchiveSource(`${prefix}${dir}/nope.tar`),
      {
        name: "DockerSaveError",
        code: "BAD_LAYOUT",
        message: `Cannot read source "${prefix}${dir}/nope.tar": no such file`,
      },
    );
  });
});

test(
  "fromOciArchive() reads the oci-archive skopeo writes",
  { skip, timeout: TOOL_TIMEOUT },
  async () => {
    requireSkopeo();
    await withTemp("docker-save-oci-archive-", async (dir) => {
      const path = join(dir, "skopeo-oci.tar");
      await skopeo([
        "--insecure-policy",
        "copy",
        "--quiet",
        `docker-archive:${basic.dir}/expected.tar:oracle/basic:v1`,
        `oci-archive:${path}:basic`,
      ]);
      const image = await fromOciArchive(path, "basic");
      const out = await readTar(
        await readAll(save([["oracle/basic:v1", image]])),
      );
      const golden = await readTar(basic.expected);
      // skopeo writes a new manifest and config (so new v1 ids), but the
      // layers are the golden ones.
      const parts = (members: TarMember[]) => {
        const entry = JSON.parse(memberText(members, "manifest.json"))[0];
        return entry.Layers.map((name: string) =>
          members.find((m) => m.name === name)!.data
        );
      };
      assert.deepEqual(parts(out), parts(golden));
    });
  },
);
