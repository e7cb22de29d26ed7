/**
 * Every platform of an image, read from an OCI layout, an OCI archive and
 * the Debian registry, and saved by the library and by the CLI's
 * `--platform all|available|LIST`: the same bytes as saving the index the
 * fixture built, the source index's digest kept, refusals named.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import {
  fromOciArchiveIndex,
  fromOciLayoutIndex,
  fromRegistryIndex,
  isImageIndex,
  save,
  type SaveOptions,
  selectPlatforms,
} from "../../mod.ts";
import { packTar } from "modern-tar";
import { readAll } from "../_kit/bytes.ts";
import { Cleanup, withTemp } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { fixture } from "../_kit/multi_platform.ts";
import { runCli } from "../_kit/processes.ts";
import {
  pushImage,
  pushManifest,
  registrySkip as skipRegistry,
  requireRegistryTools,
  startRegistry,
} from "../_kit/registry.ts";
import { readTar } from "../_kit/tar.ts";

const TAG = "example.com/multi/app:v1";
const COMPRESSED: SaveOptions = { format: "oci", layers: "compressed" };

// The fixture's index as an OCI layout directory and an OCI archive.
async function onDisk(dir: string) {
  const { index } = await fixture();
  const archive = `${dir}/multi.tar`;
  const bytes = await readAll(save([[TAG, index]], COMPRESSED));
  writeFileSync(archive, bytes);
  const layout = `${dir}/layout`;
  for (const member of await readTar(bytes)) {
    const path = `${layout}/${member.name}`;
    mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    writeFileSync(path, member.data);
  }
  return { index, archive, layout, expected: bytes };
}

function indexJson(tar: Uint8Array) {
  return readTar(tar).then((members) =>
    JSON.parse(
      new TextDecoder().decode(
        members.find((m) => m.name === "index.json")!.data,
      ),
    )
  );
}

test("fromOciLayoutIndex() and fromOciArchiveIndex() read every platform back to the same tarball", async () => {
  await withTemp("multi-sources-", async (dir) => {
    const { layout, archive, expected, index } = await onDisk(dir);
    for (
      const read of [
        () => fromOciLayoutIndex(layout, TAG),
        () => fromOciArchiveIndex(archive, TAG),
      ]
    ) {
      const found = await read();
      assert.ok(isImageIndex(found));
      assert.deepEqual(await found.rawIndex(), await index.rawIndex());
      const again = await readAll(save([[TAG, found]], COMPRESSED));
      assert.ok(Buffer.from(again).equals(Buffer.from(expected)));
    }
  });
});

test("a subset of platforms read from an OCI layout or archive is a whole index: schemaVersion and mediaType kept, as a subset of the fixture's own index", async () => {
  await withTemp("multi-sources-", async (dir) => {
    const { layout, archive, index } = await onDisk(dir);
    const expected = await selectPlatforms(index, ["linux/amd64"]);
    for (
      const read of [
        () => fromOciLayoutIndex(layout, TAG),
        () => fromOciArchiveIndex(archive, TAG),
      ]
    ) {
      const found = await read();
      assert.ok(isImageIndex(found));
      const subset = await selectPlatforms(found, ["linux/amd64"]);
      const written = JSON.parse(
        new TextDecoder().decode(await subset.rawIndex()),
      );
      assert.equal(written.schemaVersion, 2);
      assert.equal(
        written.mediaType,
        "application/vnd.oci.image.index.v1+json",
      );
      assert.deepEqual(await subset.rawIndex(), await expected.rawIndex());
    }
  });
});

test(
  "fromRegistryIndex() pulls every platform of an index pushed to the Debian registry",
  {
    skip: skipRegistry,
    timeout: 60_000,
  },
  async () => {
    requireRegistryTools();
    const cleanup = new Cleanup();
    try {
      const registry = await startRegistry(cleanup);
      const { index } = await fixture();
      for (const entry of (await index.index()).manifests) {
        const child = (await index.child(entry))!;
        assert.ok(!isImageIndex(child));
        await pushImage(registry.url, "multi/app", entry.digest, child);
      }
      const raw = await index.rawIndex();
      await pushManifest(
        registry.url,
        "multi/app",
        "v1",
        raw,
        "application/vnd.oci.image.index.v1+json",
      );
      const pulled = await fromRegistryIndex(`${registry.host}/multi/app:v1`, {
        dockerConfig: false,
        retry: { delay: 1, maxDelay: 5 },
      });
      assert.ok(isImageIndex(pulled));
      const fromRegistry = await readAll(save([[TAG, pulled]], COMPRESSED));
      const fromMemory = await readAll(save([[TAG, index]], COMPRESSED));
      assert.ok(Buffer.from(fromRegistry).equals(Buffer.from(fromMemory)));
      assert.equal(
        (await indexJson(fromRegistry)).manifests[0].digest,
        digestOf(raw),
      );
    } finally {
      await cleanup.close();
    }
  },
);

test("cli --platform all|LIST|available writes indexes, refuses the docker format and names missing platforms", async () => {
  await withTemp("multi-cli-", async (dir) => {
    const { layout, expected, index } = await onDisk(dir);
    const source = `oci:${layout}:${TAG}`;
    const run = (...args: string[]) => runCli(["-q", ...args]);

    const all = await run(
      "--platform",
      "all",
      "--format",
      "oci",
      "--layers",
      "compressed",
      "-o",
      `${dir}/all.tar`,
      source,
    );
    assert.equal(all.code, 0, all.stderr);
    assert.ok(readFileSync(`${dir}/all.tar`).equals(Buffer.from(expected)));

    // A list: a new index of those platforms, the attestation dropped.
    const two = await run(
      "--platform",
      "linux/amd64,linux/arm64",
      "--format",
      "docker+oci",
      "--layers",
      "compressed",
      "-o",
      `${dir}/two.tar`,
      source,
    );
    assert.equal(two.code, 0, two.stderr);
    const members = await readTar(readFileSync(`${dir}/two.tar`));
    const [entry] = JSON.parse(
      new TextDecoder().decode(
        members.find((m) => m.name === "index.json")!.data,
      ),
    ).manifests;
    const written = JSON.parse(
      new TextDecoder().decode(
        members.find((m) => m.name === `blobs/sha256/${entry.digest.slice(7)}`)!
          .data,
      ),
    );
    assert.deepEqual(
      written.manifests.map((m: { platform: { architecture: string } }) =>
        m.platform.architecture
      ),
      ["amd64", "arm64"],
    );

    // The docker format holds one platform per tag: refused, no file.
    const docker = await run(
      "--platform",
      "all",
      "-o",
      `${dir}/docker.tar`,
      source,
    );
    assert.equal(docker.code, 1);
    assert.match(docker.stderr, /docker format.*2 platforms/);
    assert.ok(!existsSync(`${dir}/docker.tar`));

    // Drop the arm64 manifest blob, as a containerd-store docker save does.
    const armEntry = (await index.index()).manifests.find((m) =>
      m.platform?.architecture === "arm64"
    )!;
    rmSync(`${layout}/blobs/sha256/${armEntry.digest.slice(7)}`);
    const partial = await run(
      "--platform",
      "all",
      "--format",
      "oci",
      "-o",
      `${dir}/partial.tar`,
      source,
    );
    assert.equal(partial.code, 1);
    assert.match(partial.stderr, /linux\/arm64\/v8/);
    assert.ok(!existsSync(`${dir}/partial.tar`));
    const available = await run(
      "--platform",
      "available",
      "--format",
      "oci",
      "--layers",
      "compressed",
      "-o",
      `${dir}/available.tar`,
      source,
    );
    assert.equal(available.code, 0, available.stderr);
    const kept = await indexJson(readFileSync(`${dir}/available.tar`));
    assert.equal(kept.manifests.length, 1);
  });
});

test("cli --platform available reads a docker >= 25 archive's partial index and keeps the archive's tag, as without --platform", async () => {
  await withTemp("multi-docker-archive-", async (dir) => {
    const { index } = await fixture();
    // What a containerd-store `docker save` of an image pulled for one
    // platform writes: the whole index, manifest.json, only amd64's blobs.
    const saved = await readTar(
      await readAll(
        save([[TAG, index]], { ...COMPRESSED, format: "docker+oci" }),
      ),
    );
    const absent = (await index.index()).manifests
      .filter((entry) => entry.platform?.architecture !== "amd64")
      .map((entry) => `blobs/sha256/${entry.digest.slice(7)}`);
    const archive = `${dir}/docker25.tar`;
    writeFileSync(
      archive,
      await packTar(
        saved.filter((member) => !absent.includes(member.name)).map((
          member,
        ) => ({
          header: { name: member.name, size: member.data.byteLength },
          body: member.data,
        })),
      ),
    );
    const out = `${dir}/available.tar`;
    const available = await runCli([
      "-q",
      "--platform",
      "available",
      "--format",
      "oci",
      "-o",
      out,
      `docker-archive:${archive}`,
    ]);
    assert.equal(available.code, 0, available.stderr);
    const [entry] = (await indexJson(readFileSync(out))).manifests;
    assert.equal(entry.annotations["org.opencontainers.image.ref.name"], TAG);
  });
});
