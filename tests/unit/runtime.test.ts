/**
 * The runtime adapters, each implementation forced: `node:crypto` and
 * `@noble/hashes` hashing, `node:zlib` and `DecompressionStream` gunzip, and
 * the `node:fs` file system.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, realpath, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { createSha256, type HashBackend } from "../../src/runtime/hash.ts";
import {
  createGunzip,
  type GunzipBackend,
  readsEveryGzipMember,
} from "../../src/runtime/decompress.ts";
import { isNotFound, nodeFileSystem } from "../../src/runtime/fs.ts";
import { assertSameBytes, concat, readAll } from "../_kit/bytes.ts";
import { sha256Hex } from "../_kit/digest.ts";

const TIMEOUT = 60_000;
const MiB = 1024 * 1024;
const encoder = new TextEncoder();

/** Deterministic bytes: `(i * 31 + 7) % 251`. */
function pattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + 7) % 251;
  return out;
}

/** Plain Uint8Array copies, so deepEqual does not compare Buffer prototypes. */
function bytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data);
}

/**
 * Views over `data` in uneven sizes (cycling through `sizes`); each is a
 * subarray, so most start at a non-zero byteOffset.
 */
function unevenChunks(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length];
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** A pull-based stream of the given chunks, one per pull. */
function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  }, { highWaterMark: 0 });
}

// --- createSha256 ---------------------------------------------------------

const HASH_BACKENDS: HashBackend[] = ["node", "digest-stream", "noble"];
// Workers' streaming digest; tests/workerd.test.ts runs it in workerd.
const hashSkip = (backend: HashBackend) =>
  backend === "digest-stream" &&
    typeof (crypto as { DigestStream?: unknown }).DigestStream !== "function"
    ? "this runtime has no crypto.DigestStream (workerd has)"
    : false;

const HASH_INPUTS: [string, Uint8Array, number[]][] = [
  ["empty", new Uint8Array(0), [1]],
  ["small", encoder.encode("abc"), [1, 2]],
  ["5 MiB", pattern(5 * MiB), [1, 63, 64, 65, 4093, 65_537, 1_000_003, 7]],
];

test("sha256 known answers (node:crypto, the reference below)", () => {
  const hex = sha256Hex;
  assert.equal(
    hex(new Uint8Array(0)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    hex(encoder.encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

for (const backend of HASH_BACKENDS) {
  for (const [label, data, sizes] of HASH_INPUTS) {
    test(
      `createSha256("${backend}") matches node:crypto: ${label} input in uneven chunks`,
      { timeout: TIMEOUT, skip: hashSkip(backend) },
      async () => {
        const expected = sha256Hex(data);
        const hash = await createSha256(backend);
        for (const chunk of unevenChunks(data, sizes)) await hash.update(chunk);
        assert.equal(await hash.hexDigest(), expected);

        // In one piece, and with an explicit empty update, too.
        const whole = await createSha256(backend);
        await whole.update(new Uint8Array(0));
        await whole.update(data);
        assert.equal(await whole.hexDigest(), expected);
      },
    );
  }
}

// --- createGunzip ---------------------------------------------------------

const GUNZIP_BACKENDS: GunzipBackend[] = [
  "node",
  "decompression-stream",
  "web",
];
// DecompressionStream is used only where it reads every member (Node, Bun;
// not Deno, Chromium or workerd).
const everyMember = await readsEveryGzipMember();
const gunzipSkip = (backend: GunzipBackend) =>
  backend === "decompression-stream" && !everyMember
    ? "this runtime's DecompressionStream stops after the first gzip member"
    : false;

async function gunzip(
  backend: GunzipBackend,
  chunks: Uint8Array[],
): Promise<Uint8Array> {
  return await readAll(
    streamOf(chunks).pipeThrough(await createGunzip(backend)),
  );
}

for (const backend of GUNZIP_BACKENDS) {
  test(
    `createGunzip("${backend}") decodes every member of a multi-member gzip`,
    { timeout: TIMEOUT, skip: gunzipSkip(backend) },
    async () => {
      const first = encoder.encode("first member\n".repeat(100));
      const second = pattern(70_000);
      const gz = concat([bytes(gzipSync(first)), bytes(gzipSync(second))]);
      const expected = concat([first, second]);
      // Whole, and split so that a chunk ends right at the member boundary.
      const boundary = bytes(gzipSync(first)).length;
      for (
        const chunks of [
          [gz],
          [gz.subarray(0, boundary), gz.subarray(boundary)],
          unevenChunks(gz, [3, 100, 1]),
        ]
      ) {
        assertSameBytes(await gunzip(backend, chunks), expected);
      }
    },
  );

  test(
    `createGunzip("${backend}") decodes a 3 MiB random payload fed in small chunks`,
    { timeout: TIMEOUT, skip: gunzipSkip(backend) },
    async () => {
      const payload = bytes(randomBytes(3 * MiB));
      const gz = bytes(gzipSync(payload));
      const out = await gunzip(backend, unevenChunks(gz, [1000, 17, 4096, 1]));
      assertSameBytes(out, payload);
    },
  );

  test(
    `createGunzip("${backend}") errors the stream on a truncated gzip`,
    { timeout: TIMEOUT, skip: gunzipSkip(backend) },
    async () => {
      const gz = bytes(gzipSync(pattern(200_000)));
      // Cut inside the deflate data, and (zlib only) cut just the 8-byte
      // trailer (zlib, DecompressionStream): fflate does not read gzip trailers. The content is still
      // whole then, and save() checks it against the diff_id anyway.
      const cuts = backend !== "web"
        ? [Math.floor(gz.length / 2), gz.length - 8]
        : [Math.floor(gz.length / 2)];
      for (const cut of cuts) {
        await assert.rejects(
          gunzip(backend, unevenChunks(gz.subarray(0, cut), [512])),
          `truncated to ${cut} of ${gz.length} bytes`,
        );
      }
    },
  );
}

// --- nodeFileSystem -------------------------------------------------------

/**
 * Whether this process holds `path` open, from /proc/self/fd; `undefined`
 * where there is no /proc (not Linux).
 */
function isOpen(path: string): boolean | undefined {
  if (!existsSync("/proc/self/fd")) return undefined;
  return readdirSync("/proc/self/fd").some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed meanwhile, or the directory's own fd
    }
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  // realpath: /proc shows resolved paths (a symlinked tmpdir would differ).
  const dir = await realpath(await mkdtemp(join(tmpdir(), "docker-save-fs-")));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test(
  "nodeFileSystem().openRead streams a file in chunks and closes it at the end",
  { timeout: TIMEOUT },
  async () => {
    await withTempDir(async (dir) => {
      const fs = await nodeFileSystem();
      assert.ok(fs, "node:fs is available on this runtime");
      const path = join(dir, "blob");
      const data = pattern(1_000_000); // several 256 KiB reads
      await writeFile(path, data);

      const stream = await fs.openRead(path);
      const reader = stream.getReader();
      const chunks: Uint8Array[] = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        assert.ok(value instanceof Uint8Array);
        chunks.push(value);
      }
      assert.ok(chunks.length > 1, `read in ${chunks.length} chunk(s)`);
      assertSameBytes(concat(chunks), data);
      assert.notEqual(isOpen(path), true, "file still open after the end");
      await unlink(path);
    });
  },
);

test(
  "nodeFileSystem().openRead: cancel() closes the file",
  { timeout: TIMEOUT },
  async () => {
    await withTempDir(async (dir) => {
      const fs = await nodeFileSystem();
      assert.ok(fs, "node:fs is available on this runtime");
      const path = join(dir, "blob");
      const data = pattern(300_000);
      await writeFile(path, data);

      const stream = await fs.openRead(path);
      assert.notEqual(isOpen(path), false, "file open once openRead resolves");
      const reader = stream.getReader();
      const first = await reader.read();
      assert.equal(first.done, false);
      assertSameBytes(first.value!, data.subarray(0, first.value!.length));
      await reader.cancel("enough");
      assert.notEqual(isOpen(path), true, "file still open after cancel()");
      // A closed stream: further reads are done, and the file can go.
      assert.equal((await reader.read()).done, true);
      await unlink(path);
    });
  },
);

test(
  "nodeFileSystem(): a missing file rejects with a not-found error",
  { timeout: TIMEOUT },
  async () => {
    await withTempDir(async (dir) => {
      const fs = await nodeFileSystem();
      assert.ok(fs, "node:fs is available on this runtime");
      for (
        const path of [join(dir, "missing"), join(dir, "missing", "deeper")]
      ) {
        await assert.rejects(fs.openRead(path), (error: unknown) => {
          assert.ok(isNotFound(error), `openRead(${path}): ${String(error)}`);
          return true;
        });
        await assert.rejects(fs.readFile(path), (error: unknown) => {
          assert.ok(isNotFound(error), `readFile(${path}): ${String(error)}`);
          return true;
        });
      }
    });
  },
);
