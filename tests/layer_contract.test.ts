/**
 * The layer contract at the seams: whatever wraps a source (the CLI's
 * progress, an archive's renaming, `wrapImage`), the same bytes come out,
 * ranges equal the same slice of the full tarball, and a kept v1 form is
 * checked before it is trusted.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { packTar } from "modern-tar";
import {
  DockerSaveError,
  fromDockerArchive,
  fromOciArchive,
  save,
  saveResponse,
} from "../mod.ts";
import { goldenCases, goldenEntries, readAll } from "./_golden.ts";
import {
  digestOf,
  layerTar,
  readTar,
  sha256Hex,
  type TarMember,
  withTemp,
} from "./_fixtures.ts";

const CLI = new URL("../src/cli.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

// The CLI runs on the runtime running this test.
function cliCommand(): string[] {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Deno) return [process.execPath, "run", "-A", CLI];
  if (g.Bun) return [process.execPath, CLI];
  return [process.execPath, "--import", "tsx", CLI];
}

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const [cmd, ...pre] = cliCommand();
  return new Promise((resolve) => {
    execFile(cmd, [...pre, ...args], {
      cwd: ROOT,
      encoding: "buffer",
      env: { ...process.env, DOCKER_CONFIG: "/nonexistent" },
    }, (error, _stdout, stderr) =>
      resolve({
        code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
        stderr: stderr.toString(),
      }));
  });
}

for (const golden of goldenCases()) {
  test(`cli gives the same bytes with and without -q for docker-archive "${golden.name}"`, async () => {
    await withTemp("contract-cli-", async (dir) => {
      const archive = `${dir}/in.tar`;
      writeFileSync(archive, golden.expected);
      const sources = golden.save.map(({ tag }) =>
        `docker-archive:${archive}:${tag}`
      );
      const quiet = await cli(["-q", "-o", `${dir}/quiet.tar`, ...sources]);
      assert.equal(quiet.code, 0, quiet.stderr);
      const loud = await cli(["-o", `${dir}/loud.tar`, ...sources]);
      assert.equal(loud.code, 0, loud.stderr);
      const [a, b] = await Promise.all(
        ["quiet", "loud"].map(async (name) =>
          new Uint8Array(
            await new Response(
              (await import("node:fs")).readFileSync(`${dir}/${name}.tar`),
            ).arrayBuffer(),
          )
        ),
      );
      // The reference's output read back and saved again is itself.
      assert.ok(Buffer.from(a).equals(Buffer.from(golden.expected)));
      assert.ok(Buffer.from(b).equals(Buffer.from(golden.expected)));
    });
  });
}

test("saveResponse() serves a Range of an fromOciArchive() image as the same slice of the full tarball", async () => {
  const [basic] = goldenCases().filter((c) => c.name === "basic");
  await withTemp("contract-range-", async (dir) => {
    const path = `${dir}/oci.tar`;
    const options = { format: "oci", layers: "compressed" } as const;
    writeFileSync(
      path,
      await readAll(save(await goldenEntries(basic), options)),
    );
    const entries = async () => [[
      "oracle/basic:v1",
      await fromOciArchive(path, "oracle/basic:v1"),
    ] as [string, Awaited<ReturnType<typeof fromOciArchive>>]];
    const full = await readAll(save(await entries(), options));
    // Every start inside the first layer blob's body, a few bytes long.
    const members = await readTar(full);
    const layerStart = offsetOfLargest(full, members);
    for (const start of [layerStart + 1, layerStart + 10, layerStart + 77]) {
      const response = await saveResponse(
        new Request("http://127.0.0.1/", {
          headers: { range: `bytes=${start}-${start + 19}` },
        }),
        await entries(),
        options,
      );
      assert.equal(response.status, 206);
      const got = new Uint8Array(await response.arrayBuffer());
      assert.ok(
        Buffer.from(got).equals(Buffer.from(full.subarray(start, start + 20))),
        `range at ${start}`,
      );
    }
  });
});

// The offset of the largest gzip member's body: a layer blob.
function offsetOfLargest(tar: Uint8Array, members: TarMember[]): number {
  const largest = members
    .filter((m) => m.data[0] === 0x1f && m.data[1] === 0x8b)
    .reduce((a, b) => a.data.byteLength >= b.data.byteLength ? a : b);
  // Find its bytes in the tarball: bodies start on a block boundary.
  for (let at = 0; at < tar.byteLength; at += 512) {
    if (
      Buffer.from(tar.subarray(at, at + largest.data.byteLength)).equals(
        Buffer.from(largest.data),
      )
    ) return at;
  }
  throw new Error("largest member not found");
}

/**
 * The golden "basic" reference archive with its base layer's content
 * replaced, under the same v1 directory: a self-consistent archive (config
 * diff_ids match the layer.tar) whose v1 id collides with the original's.
 */
async function collidingArchive(
  expected: Uint8Array,
  newTag: string,
): Promise<Uint8Array> {
  const members = await readTar(expected);
  const manifest = JSON.parse(
    new TextDecoder().decode(
      members.find((m) => m.name === "manifest.json")!.data,
    ),
  );
  const [entry] = manifest;
  const configMember = members.find((m) => m.name === entry.Config)!;
  const config = JSON.parse(new TextDecoder().decode(configMember.data));
  const baseLayer = entry.Layers[0] as string;
  const replaced = await layerTar({ "etc/other": "not the original\n" });
  config.rootfs.diff_ids[0] = digestOf(replaced);
  const configBytes = new TextEncoder().encode(JSON.stringify(config));
  const configName = `${sha256Hex(configBytes)}.json`;
  const topId = entry.Layers.at(-1).split("/")[0];
  const [repo, tag] = newTag.split(":");
  const out = members.map((m) => {
    if (m.name === baseLayer) return { ...m, data: replaced };
    if (m.name === entry.Config) return { name: configName, data: configBytes };
    if (m.name === "manifest.json") {
      const text = JSON.stringify([
        { ...entry, Config: configName, RepoTags: [newTag] },
      ]);
      return { name: m.name, data: new TextEncoder().encode(text) };
    }
    if (m.name === "repositories") {
      const text = JSON.stringify({ [repo]: { [tag]: topId } });
      return { name: m.name, data: new TextEncoder().encode(text) };
    }
    return m;
  });
  return await packTar(
    out.map((m) => ({
      header: { name: m.name, size: m.data.byteLength, type: "file" as const },
      body: m.data,
    })),
  );
}

test("save() errors with V1_ID_CONFLICT when two kept v1 forms give one id two layers", async () => {
  const [basic] = goldenCases().filter((c) => c.name === "basic");
  await withTemp("contract-v1-", async (dir) => {
    writeFileSync(`${dir}/a.tar`, basic.expected);
    writeFileSync(
      `${dir}/b.tar`,
      await collidingArchive(basic.expected, "other/b:v1"),
    );
    const a = await fromDockerArchive(`${dir}/a.tar`);
    const b = await fromDockerArchive(`${dir}/b.tar`);
    // Each alone is kept byte for byte (b is consistent in itself).
    assert.ok(
      Buffer.from(await readAll(save([["oracle/basic:v1", a]]))).equals(
        Buffer.from(basic.expected),
      ),
    );
    await readAll(save([["other/b:v1", b]]));
    await assert.rejects(
      readAll(save([["oracle/basic:v1", a], ["other/b:v1", b]])),
      (error: unknown) =>
        error instanceof DockerSaveError && error.code === "V1_ID_CONFLICT",
    );
  });
});
