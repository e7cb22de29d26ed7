/**
 * Chunks freed by their last reader (src/runtime/chunk_release.ts): a
 * marked buffer goes at once where the runtime has
 * `ArrayBuffer.prototype.transfer` (Deno, Bun), nothing unmarked is ever
 * freed, and no chunk that reaches a caller, or that a caller owns, is
 * touched. That it lowers peak RSS is checked by cli_memory.test.ts.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fromMemory, fromOciLayout, save, saveToFile } from "../../mod.ts";
import {
  claimChunks,
  collectDroppedBuffers,
  countGarbage,
  freesAtOnce,
  ownChunk,
  partsEnded,
  releaseChunk,
} from "../../src/runtime/chunk_release.ts";
import { createGunzip } from "../../src/runtime/decompress.ts";
import { nodeFileSystem } from "../../src/runtime/fs.ts";
import { resumableBlob } from "../../src/sources/registry/blob_stream.ts";
import { collect, concat, readAll } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import { digestOf, sha256Hex } from "../_kit/digest.ts";
import { collectionsAsked } from "../_kit/gc.ts";
import { fastTransport } from "../_kit/registry_client.ts";
import { MEDIA } from "../_kit/format.ts";
import { makeParts } from "../_kit/images.ts";
import { addBlob, type LayoutFiles, writeLayout } from "../_kit/layout.ts";

const canFree = typeof (ArrayBuffer.prototype as { transfer?: unknown })
  .transfer === "function";
const MODES = ["uncompressed", "compressed"] as const;

test("a marked chunk spanning its buffer is freed by releaseChunk (kept where there is no transfer)", () => {
  const chunk = ownChunk(new Uint8Array(1024).fill(7));
  releaseChunk(chunk);
  assert.equal(chunk.byteLength, canFree ? 0 : 1024);
});

test("a chunk never marked is never freed", () => {
  const chunk = new Uint8Array(1024).fill(7);
  releaseChunk(chunk);
  assert.equal(chunk.byteLength, 1024);
  assert.equal(chunk[1023], 7);
});

test("a buffer handed out in parts is freed once every byte was released, each part counted once", () => {
  const buffer = new Uint8Array(1000);
  const first = ownChunk(buffer.subarray(0, 400));
  const second = ownChunk(buffer.subarray(400));
  releaseChunk(first);
  releaseChunk(first); // twice: still 400 bytes, not 800
  assert.equal(second.byteLength, 600);
  releaseChunk(second);
  assert.equal(buffer.byteLength, canFree ? 0 : 1000);
});

test("a buffer handed out in parts, its producer gone on to another, is freed once the parts handed out were released", () => {
  // zlib leaves a buffer's tail unfilled at a stream's end, and Bun's hands
  // some output out as copies: those bytes are never released.
  const early = new Uint8Array(1000);
  const a = ownChunk(early.subarray(0, 400));
  const b = ownChunk(early.subarray(400, 700));
  releaseChunk(a);
  releaseChunk(b);
  assert.equal(early.byteLength, 1000, "the tail may still be handed out");
  partsEnded(early.buffer);
  assert.equal(early.byteLength, canFree ? 0 : 1000);

  const late = new Uint8Array(1000);
  const c = ownChunk(late.subarray(0, 400));
  const d = ownChunk(late.subarray(400, 700));
  partsEnded(late.buffer);
  releaseChunk(c);
  assert.equal(d.byteLength, 300, "a part handed out is not yet released");
  releaseChunk(d);
  assert.equal(late.byteLength, canFree ? 0 : 1000);
});

test("a buffer never handed out in marked parts is not freed when its producer goes on", () => {
  const buffer = new Uint8Array(1000).fill(7);
  const view = buffer.subarray(0, 400); // not marked: the caller's
  partsEnded(buffer.buffer);
  releaseChunk(view);
  assert.equal(buffer.byteLength, 1000);
  assert.equal(buffer[999], 7);
});

test("every buffer of a claimed gunzip's output is freed once its chunks are released (the last one too)", async () => {
  // Its last 256 KiB buffer is only partly filled: it was never freed, nor
  // were the buffers Bun's zlib leaves with a tail (up to ~50 MiB of a
  // 200 MiB stream, freed only by the collector).
  const plain = randomBytes(1024 * 1024 + 12345);
  const gz = gzipSync(plain);
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < gz.length; at += 65536) {
        controller.enqueue(new Uint8Array(gz.subarray(at, at + 65536)));
      }
      controller.close();
    },
  });
  const chunks: Uint8Array[] = [];
  await collect(claimChunks(input.pipeThrough(await createGunzip())), chunks);
  assert.deepEqual(concat(chunks), new Uint8Array(plain));
  const buffers = new Set(chunks.map((chunk) => chunk.buffer));
  for (const chunk of chunks) releaseChunk(chunk);
  const left = [...buffers].filter((buffer) => buffer.byteLength > 0);
  assert.equal(left.length, canFree ? 0 : buffers.size);
});

test("a view nobody marked does not count towards freeing the buffer it shares", () => {
  const buffer = new Uint8Array(1000);
  const marked = ownChunk(buffer.subarray(0, 500));
  const other = buffer.subarray(500);
  releaseChunk(marked);
  releaseChunk(other);
  assert.equal(buffer.byteLength, 1000);
  assert.equal(other.byteLength, 500);
});

// An OCI layout on disk with one 6 MiB gzip layer (random bytes and zeros,
// so that zlib hands out whole buffers and parts of buffers).
function bigLayout(dir: string): string {
  const tar = new Uint8Array(6 * 1024 * 1024);
  for (let at = 0; at < tar.byteLength; at += 2 * 1024 * 1024) {
    tar.set(randomBytes(1024 * 1024), at);
  }
  const parts = makeParts({ layers: [tar], gzip: true });
  const files: LayoutFiles = new Map();
  for (const [, blob] of parts.blobs) {
    addBlob(files, MEDIA.dockerLayerGzip, blob);
  }
  addBlob(files, MEDIA.dockerConfig, parts.config);
  const manifest = addBlob(files, MEDIA.dockerManifest, parts.manifest);
  files.set(
    "oci-layout",
    new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}'),
  );
  files.set(
    "index.json",
    new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "big" },
      }],
    })),
  );
  const layout = `${dir}/oci`;
  writeLayout(layout, files);
  return layout;
}

test("save() hands the caller chunks that stay whole after the stream has ended (file reads and zlib output, both layer modes)", async () => {
  await withTemp("chunk-release-", async (dir) => {
    const layout = bigLayout(dir);
    for (const layers of MODES) {
      const chunks: Uint8Array[] = [];
      await collect(
        save([["big/app:v1", await fromOciLayout(layout, "big")]], { layers }),
        chunks,
      );
      const lengths = chunks.map((chunk) => chunk.byteLength);
      // Read again, copying each chunk as it comes: the independent bytes.
      const expected = await readAll(
        save([["big/app:v1", await fromOciLayout(layout, "big")]], { layers }),
      );
      await saveToFile(
        `${dir}/${layers}.tar`,
        [["big/app:v1", await fromOciLayout(layout, "big")]],
        { layers },
      );
      assert.deepEqual(
        chunks.map((chunk) => chunk.byteLength),
        lengths,
        layers,
      );
      assert.equal(sha256Hex(concat(chunks)), sha256Hex(expected));
      assert.equal(
        sha256Hex(new Uint8Array(readFileSync(`${dir}/${layers}.tar`))),
        sha256Hex(expected),
      );
    }
  });
});

test("saveToFile() leaves the caller's own layer bytes as they were (fromMemory, both layer modes)", async () => {
  await withTemp("chunk-release-", async (dir) => {
    // Small blobs: fromMemory streams each as one view spanning its buffer.
    const tar = new Uint8Array(40_000).fill(1);
    for (const gzip of [true, false]) {
      const parts = makeParts({ layers: [tar], gzip });
      const [[digest, blob]] = [...parts.blobs];
      const copy = blob.slice();
      for (const layers of MODES) {
        await saveToFile(`${dir}/out.tar`, [[
          "mem/app:v1",
          fromMemory({ ...parts, blobs: new Map([[digest, blob]]) }),
        ]], { layers });
        assert.equal(blob.byteLength, copy.byteLength, `${gzip} ${layers}`);
        assert.equal(digestOf(blob), digest);
      }
    }
  });
});

// A registry blob whose body gives `chunks` as they are, read by its one
// reader (claimed), joined as resumableBlob joins small chunks.
function claimedBlob(
  chunks: Uint8Array[],
  stall?: Promise<void>,
): ReadableStream<Uint8Array> {
  const transport = fastTransport();
  const size = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  return claimChunks(resumableBlob(
    transport,
    () => {
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        pull: async (controller) => {
          if (i < chunks.length) return controller.enqueue(chunks[i++]);
          await stall; // a link that stops sending, until it is let go
          controller.close();
        },
      });
      return Promise.resolve(new Response(body));
    },
    size,
    "blob",
  ));
}

test("a registry blob's small chunks are joined into chunks that releaseChunk frees", async () => {
  // workerd's and Deno's fetch hand out small chunks, joined into 256 KiB
  // buffers; a joined chunk handed on as a view of part of its buffer was
  // never freed (its unfilled tail is never released): Deno's peak RSS on a
  // 256 MiB registry layer rose from 72-77 to 90-91 MiB.
  const small = Array.from(
    { length: 150 },
    (_, i) => new Uint8Array(4096).fill(i),
  );
  const expected = concat(small);
  const joined: Uint8Array[] = [];
  await collect(claimedBlob(small.map((chunk) => chunk.slice())), joined);
  assert.ok(joined.length < small.length, "the small chunks were joined");
  assert.deepEqual(concat(joined), expected);
  for (const chunk of joined) releaseChunk(chunk);
  const left = joined.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  assert.equal(left, canFree ? 0 : expected.byteLength);
});

test("a registry blob's small chunks, each its own buffer, are freed once copied into a joined chunk", async () => {
  // They were left for the collector: up to 32 KiB each, thousands per
  // layer where fetch hands out small chunks.
  const small = Array.from(
    { length: 150 },
    (_, i) => new Uint8Array(1000 + i).fill(i),
  );
  const expected = concat(small);
  const given = small.map((chunk) => chunk.slice());
  const joined: Uint8Array[] = [];
  await collect(claimedBlob(given), joined);
  assert.deepEqual(concat(joined), expected);
  const left = given.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  assert.equal(left, canFree ? 0 : expected.byteLength);
});

test("a registry blob's 64 KiB chunks are joined into 256 KiB chunks, whole, and freed once copied", async () => {
  // Deno's and Node's fetch hand out up to 64 KiB: four times fewer chunks
  // through the stages (Deno's peak RSS streaming the 8-layer pull to
  // stdout 3-6 MiB lower); filled to the end, so no second copy to fit.
  const given = Array.from(
    { length: 8 },
    (_, i) => new Uint8Array(64 * 1024).fill(i),
  );
  const expected = concat(given);
  const joined: Uint8Array[] = [];
  await collect(claimedBlob(given), joined);
  assert.deepEqual(concat(joined), expected);
  assert.deepEqual(
    joined.map((chunk) => [chunk.byteLength, chunk.buffer.byteLength]),
    [[256 * 1024, 256 * 1024], [256 * 1024, 256 * 1024]],
  );
  const left = given.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  assert.equal(left, canFree ? 0 : expected.byteLength);
});

test("a registry blob's bytes are handed on when its link stalls, not held back to fill a join", async () => {
  // Three 64 KiB chunks, then nothing: what came must go on at once (a
  // closed output pipe is only seen on a write; held back, the CLI hung).
  let letGo!: () => void;
  const stall = new Promise<void>((resolve) => letGo = resolve);
  const given = Array.from(
    { length: 3 },
    (_, i) => new Uint8Array(64 * 1024).fill(i),
  );
  const expected = concat(given);
  const reader = claimedBlob(given, stall).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const first = await Promise.race([
    reader.read(),
    new Promise<"held back">((resolve) => {
      timer = setTimeout(() => resolve("held back"), 2000);
    }),
  ]);
  clearTimeout(timer);
  assert.notEqual(first, "held back");
  const got = [(first as ReadableStreamReadResult<Uint8Array>).value!.slice()];
  letGo();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    got.push(value.slice());
  }
  assert.deepEqual(concat(got), expected);
});

test("where a buffer cannot be freed at once, a released joined chunk's buffer is filled again by the next join, of any registry blob", async () => {
  // Node 20 has no transfer: joined chunks that waited in the prefetch
  // buffer outlived the young generation and piled up as garbage (~50 MiB
  // at peak, 8-layer pull to stdout).
  const blobOf = (base: number) =>
    Array.from(
      { length: 8 },
      (_, i) => new Uint8Array(64 * 1024).fill(base + i),
    );
  const first: Uint8Array[] = [];
  await collect(claimedBlob(blobOf(0)), first);
  const buffers = first.map((chunk) => chunk.buffer);
  // A second blob still being read: the pool is kept while one is.
  const second = claimedBlob(blobOf(100)).getReader();
  const head = await second.read();
  for (const chunk of first) releaseChunk(chunk);
  const rest: Uint8Array[] = [];
  await collect(claimedBlob(blobOf(50)), rest);
  assert.deepEqual(concat(rest), concat(blobOf(50)));
  const reused = rest.filter((chunk) => buffers.includes(chunk.buffer));
  if (canFree) {
    assert.equal(reused.length, 0);
    assert.ok(first.every((chunk) => chunk.byteLength === 0), "freed");
  } else assert.equal(reused.length, 2);
  assert.deepEqual(head.value, concat(blobOf(100)).subarray(0, 256 * 1024));
  await second.cancel();
});

test("a registry blob's small chunks that are views of one buffer are copied and left as they were", async () => {
  // Only a chunk spanning its own buffer is known to be nobody else's: a
  // view's buffer may hold other bytes (a runtime's pool, or the caller's).
  const shared = new Uint8Array(150 * 4096);
  for (let i = 0; i < shared.length; i++) shared[i] = i % 251;
  const expected = shared.slice();
  const views = Array.from(
    { length: 150 },
    (_, i) => shared.subarray(i * 4096, (i + 1) * 4096),
  );
  const joined: Uint8Array[] = [];
  await collect(claimedBlob(views), joined);
  assert.deepEqual(concat(joined), expected);
  assert.equal(shared.byteLength, expected.byteLength);
  assert.deepEqual(shared, expected);
});
// A file of `size` random bytes in `dir`, and its bytes.
function randomFile(dir: string, size: number): [string, Uint8Array] {
  const bytes = new Uint8Array(randomBytes(size));
  writeFileSync(`${dir}/blob`, bytes);
  return [`${dir}/blob`, bytes];
}

test("a file read's chunks, released by the stream's claimed reader, come back filled with the next bytes", async () => {
  // A fresh buffer per read faults in fresh pages each time; Node 20, which
  // cannot free one early, also collects them late (0.53 s against 0.20 s
  // to read, hash and write 133 MB).
  await withTemp("chunk-release-", async (dir) => {
    const [path, expected] = randomFile(dir, 3 * 1024 * 1024 + 77);
    const fs = (await nodeFileSystem())!;
    const reader = claimChunks(await fs.openRead(path)).getReader();
    const seen = new Set<ArrayBufferLike>();
    const copies: Uint8Array[] = [];
    let reused = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (seen.has(value.buffer)) reused++;
      seen.add(value.buffer);
      copies.push(value.slice());
      releaseChunk(value);
    }
    assert.deepEqual(concat(copies), expected);
    assert.ok(reused >= 8, `buffers filled again: ${reused} of 13 reads`);
  });
});

test("a file read's chunks are never filled again when the stream was not claimed, nor while its reader holds them", async () => {
  await withTemp("chunk-release-", async (dir) => {
    const [path, expected] = randomFile(dir, 2 * 1024 * 1024);
    const fs = (await nodeFileSystem())!;
    // Not claimed: released chunks stay as they are.
    const unclaimed: Uint8Array[] = [];
    for await (const chunk of iterate(await fs.openRead(path))) {
      releaseChunk(chunk);
      unclaimed.push(chunk);
    }
    assert.deepEqual(concat(unclaimed), expected);
    // Claimed, none released: every chunk keeps its own buffer and bytes.
    const held: Uint8Array[] = [];
    await collect(claimChunks(await fs.openRead(path)), held);
    assert.equal(new Set(held.map((chunk) => chunk.buffer)).size, held.length);
    assert.deepEqual(concat(held), expected);
  });
});

async function* iterate(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

test("where a buffer cannot be freed at once and gc is exposed, every 2 MiB dropped asks for a collection, every fourth a full one", async () => {
  collectDroppedBuffers(true);
  try {
    // 8 MiB dropped: four collections, whatever was counted before.
    const types = await collectionsAsked(() => {
      for (let i = 0; i < 128; i++) countGarbage(64 * 1024);
    });
    assert.deepEqual(
      types,
      freesAtOnce ? [] : ["major", "minor", "minor", "minor"],
    );
  } finally {
    collectDroppedBuffers(false);
  }
});

test("a library in someone else's process never asks for a collection, even with gc exposed", async () => {
  // Not turned on (only the CLI does): 16 MiB dropped, no collection.
  const types = await collectionsAsked(() => {
    for (let i = 0; i < 256; i++) countGarbage(64 * 1024);
  });
  assert.deepEqual(types, []);
});
