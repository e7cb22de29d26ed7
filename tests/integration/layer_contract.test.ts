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
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { packTar } from "modern-tar";
import {
  buildImage,
  DockerSaveError,
  fromDockerArchive,
  fromOciArchive,
  fromOciLayout,
  fromRegistry,
  type Image,
  save,
  type SaveOptions,
  saveResponse,
  wrapImage,
} from "../../mod.ts";
import { readAll } from "../_kit/bytes.ts";
import { Cleanup, withTemp } from "../_kit/cleanup.ts";
import { digestOf, sha256Hex } from "../_kit/digest.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { runCli } from "../_kit/processes.ts";
import {
  pushImage,
  pushLayout,
  registrySkip as skipRegistry,
  requireRegistryTools,
  startRegistry,
} from "../_kit/registry.ts";
import { layerTar, readTar, type TarMember } from "../_kit/tar.ts";

for (const golden of goldenCases()) {
  test(`cli gives the same bytes with and without -q for docker-archive "${golden.name}"`, async () => {
    await withTemp("contract-cli-", async (dir) => {
      const archive = `${dir}/in.tar`;
      writeFileSync(archive, golden.expected);
      const sources = golden.save.map(({ tag }) =>
        `docker-archive:${archive}:${tag}`
      );
      const quiet = await runCli(["-q", "-o", `${dir}/quiet.tar`, ...sources]);
      assert.equal(quiet.code, 0, quiet.stderr);
      const loud = await runCli(["-o", `${dir}/loud.tar`, ...sources]);
      assert.equal(loud.code, 0, loud.stderr);
      const [a, b] = await Promise.all(
        ["quiet", "loud"].map(async (name) =>
          new Uint8Array(
            await new Response(readFileSync(`${dir}/${name}.tar`))
              .arrayBuffer(),
          )
        ),
      );
      // The reference's output read back and saved again is itself.
      assert.ok(Buffer.from(a).equals(Buffer.from(golden.expected)));
      assert.ok(Buffer.from(b).equals(Buffer.from(golden.expected)));
    });
  });
}

test(
  "cli gives the same bytes with and without -q for oci:, oci-archive: and registry sources",
  {
    timeout: 120_000,
  },
  async () => {
    const [basic] = goldenCases().filter((c) => c.name === "basic");
    const layout = `${basic.dir}/oci`;
    const cleanup = new Cleanup();
    try {
      await withTemp("contract-cli-kinds-", async (dir) => {
        const archive = `${dir}/oci.tar`;
        writeFileSync(
          archive,
          // Compressed: the original blobs, so the reference's v1 ids.
          await readAll(
            save(await goldenEntries(basic), {
              format: "oci",
              layers: "compressed",
            }),
          ),
        );
        const sources = [
          `oci:${layout}:basic=oracle/basic:v1`,
          `oci-archive:${archive}:oracle/basic:v1`,
        ];
        if (!skipRegistry) {
          requireRegistryTools();
          const registry = await startRegistry(cleanup);
          await pushLayout(layout, "basic", registry.url, "oracle/basic", "v1");
          sources.push(`${registry.host}/oracle/basic:v1=oracle/basic:v1`);
        }
        for (const source of sources) {
          for (const layers of ["uncompressed", "compressed"]) {
            const outputs = [];
            for (const quiet of [true, false]) {
              const out = `${dir}/${quiet ? "quiet" : "loud"}.tar`;
              const args = ["--layers", layers, "-o", out, source];
              const run = await runCli(quiet ? ["-q", ...args] : args);
              assert.equal(run.code, 0, run.stderr);
              outputs.push(readFileSync(out));
            }
            assert.ok(outputs[0].equals(outputs[1]), `${source}, ${layers}`);
            if (layers === "uncompressed") {
              assert.ok(
                outputs[0].equals(Buffer.from(basic.expected)),
                `${source}: the golden bytes`,
              );
            }
          }
        }
      });
    } finally {
      await cleanup.close();
    }
  },
);

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

// ------------------------------------------- every source kind × wrapper

/** A seeded generator, so failures repeat. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * A layer tar of `size` bytes of one file: pseudo-random blocks and text, so
 * that gzip has work to do and the blob is large (tens of MiB).
 */
async function bigLayerTar(size: number, seed: number): Promise<Uint8Array> {
  const next = random(seed);
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 4) {
    const word = Math.floor(next() * 2 ** 32);
    // Every other 64 KiB is text-like, to compress some.
    const text = (at >> 16) % 2 === 1;
    data[at] = text ? 97 + (word % 26) : word & 0xff;
    if (at + 1 < size) data[at + 1] = text ? 32 : (word >> 8) & 0xff;
    if (at + 2 < size) data[at + 2] = (word >> 16) & 0xff;
    if (at + 3 < size) data[at + 3] = (word >>> 24) & 0xff;
  }
  return await packTar([{
    header: {
      name: "data.bin",
      size,
      type: "file" as const,
      mtime: new Date(0),
    },
    body: data,
  }]);
}

interface SourceKind {
  name: string;
  /** Opens the image afresh. */
  open(): Promise<Image>;
  /** Whether compressed mode has the original blobs. */
  blobs: boolean;
  /** Whether uncompressed sizes are known without reading a layer. */
  sized: boolean;
}

const TAG = "contract/app:v1";
const BIG = 24 * 1024 * 1024;

/** What every wrapper does to an image before it is saved. */
const WRAPPERS: Record<
  string,
  (image: Image) => { image: Image; options: SaveOptions }
> = {
  "as is": (image) => ({ image, options: {} }),
  "wrapImage": (image) => ({
    image: wrapImage(image, { openLayer: (l) => image.openLayer(l) }),
    options: {},
  }),
  "progress": (image) => ({
    image,
    options: { onProgress: () => {} },
  }),
};

async function contractSources(
  dir: string,
  cleanup: Cleanup,
): Promise<SourceKind[]> {
  const memory = await buildImage({
    layers: [
      await layerTar({ "etc/hello": "hello\n" }),
      await bigLayerTar(BIG, 7),
    ],
    compression: "gzip",
  });
  const ociTar = `${dir}/oci.tar`;
  writeFileSync(
    ociTar,
    await readAll(
      save([[TAG, memory]], { format: "oci", layers: "compressed" }),
    ),
  );
  const layout = `${dir}/layout`;
  for (const member of await readTar(readFileSync(ociTar))) {
    const path = `${layout}/${member.name}`;
    mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    writeFileSync(path, member.data);
  }
  const legacy = `${dir}/legacy.tar`;
  writeFileSync(legacy, await readAll(save([[TAG, memory]])));
  const modern = `${dir}/modern.tar`;
  writeFileSync(
    modern,
    await readAll(
      save([[TAG, memory]], { format: "docker+oci", layers: "compressed" }),
    ),
  );
  const gzipped = `${dir}/legacy.tar.gz`;
  // Level 1: what is read is the same archive, gzipped in a third the time.
  writeFileSync(gzipped, gzipSync(readFileSync(legacy), { level: 1 }));
  const kinds: SourceKind[] = [
    {
      name: "memory",
      open: () => Promise.resolve(memory),
      blobs: true,
      sized: false,
    },
    {
      name: "OCI layout",
      open: () => fromOciLayout(layout),
      blobs: true,
      sized: false,
    },
    {
      name: "OCI archive",
      open: () => fromOciArchive(ociTar),
      blobs: true,
      sized: false,
    },
    {
      name: "docker archive (reference shape)",
      open: () => fromDockerArchive(legacy),
      blobs: false,
      sized: true,
    },
    {
      name: "docker archive (docker+oci)",
      open: () => fromDockerArchive(modern),
      blobs: true,
      // Its layers are the gzip blobs: their sizes need a counting pass.
      sized: false,
    },
    {
      name: "docker archive (gzipped)",
      open: () => fromDockerArchive(gzipped),
      blobs: false,
      sized: true,
    },
  ];
  if (!skipRegistry) {
    requireRegistryTools();
    const registry = await startRegistry(cleanup);
    await pushImage(registry.url, "contract/app", "v1", memory);
    kinds.push({
      name: "registry",
      open: () =>
        fromRegistry(`${registry.host}/contract/app:v1`, {
          retry: { delay: 1, maxDelay: 5 },
          dockerConfig: false,
        }),
      blobs: true,
      // The gzip trailer's size, checked while streaming.
      sized: true,
    });
  }
  return kinds;
}

test(
  "every source kind gives the same bytes whatever wraps it, and ranges are slices of the whole",
  {
    timeout: 600_000,
  },
  async () => {
    const cleanup = new Cleanup();
    try {
      await withTemp("contract-kinds-", async (dir) => {
        const kinds = await contractSources(dir, cleanup);
        const reference = new Map<string, Uint8Array>();
        const next = random(42);
        for (const layers of ["uncompressed", "compressed"] as const) {
          for (const kind of kinds) {
            if (layers === "compressed" && !kind.blobs) continue;
            const outputs: Uint8Array[] = [];
            for (const [wrapper, wrap] of Object.entries(WRAPPERS)) {
              const { image, options } = wrap(await kind.open());
              const bytes = await readAll(
                save([[TAG, image]], { ...options, layers }),
              );
              outputs.push(bytes);
              assert.ok(
                Buffer.from(bytes).equals(Buffer.from(outputs[0])),
                `${kind.name}, ${layers}: "${wrapper}" changes the bytes`,
              );
            }
            // Every kind gives the reference's bytes in uncompressed mode
            // (the archives keep the v1 form the first save wrote), and the
            // kinds with the original blobs agree in compressed mode.
            const first = reference.get(layers) ?? outputs[0];
            reference.set(layers, first);
            assert.ok(
              Buffer.from(outputs[0]).equals(Buffer.from(first)),
              `${kind.name}, ${layers}: differs from the memory image`,
            );
            await checkRanges(kind, layers, outputs[0], next);
          }
        }
      });
    } finally {
      await cleanup.close();
    }
  },
);

// Random ranges, most of them starting inside the big layer's body, must be
// the same slice of the full tarball, when every size is known up front.
// Where a size needs a read, any Range gets the whole tarball (a full save,
// whatever the range): one range per wrapper checks that.
async function checkRanges(
  kind: SourceKind,
  layers: "uncompressed" | "compressed",
  full: Uint8Array,
  next: () => number,
): Promise<void> {
  const total = full.byteLength;
  const ranged = layers === "compressed" || kind.sized;
  for (let i = 0; i < (ranged ? 4 : 1); i++) {
    const start = Math.floor(next() * (total - 4096));
    const length = 1 + Math.floor(next() * 300_000);
    const end = Math.min(total, start + length) - 1;
    for (const [wrapper, wrap] of Object.entries(WRAPPERS)) {
      const { image, options } = wrap(await kind.open());
      const response = await saveResponse(
        new Request("http://127.0.0.1/", {
          headers: { range: `bytes=${start}-${end}` },
        }),
        [[TAG, image]],
        { ...options, layers },
      );
      const body = new Uint8Array(await response.arrayBuffer());
      const what =
        `${kind.name}, ${layers}, "${wrapper}", bytes ${start}-${end}`;
      if (!ranged) {
        // Sizes that need a read: no ranges, the whole verified tarball.
        assert.equal(response.status, 200, what);
        assert.equal(response.headers.get("accept-ranges"), null, what);
        assert.ok(Buffer.from(body).equals(Buffer.from(full)), what);
        continue;
      }
      assert.equal(response.status, 206, what);
      assert.ok(
        Buffer.from(body).equals(Buffer.from(full.subarray(start, end + 1))),
        what,
      );
    }
  }
}
