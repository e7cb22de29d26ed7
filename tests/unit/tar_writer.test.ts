/**
 * Tests for the tar writer. Expected bytes come from Python's `tarfile`
 * (see `tests/testdata/tar/README.md`), never from our own code.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { unpackTar } from "modern-tar";
import { assertSameBytes, collect, concat, readAll } from "../_kit/bytes.ts";
import {
  BLOCK_SIZE,
  RECORD_SIZE,
  type TarEntry,
  tarHeader,
  tarSize,
  tarStream,
} from "../../src/save/tar_writer.ts";

const encoder = new TextEncoder();

async function fixture(name: string): Promise<Uint8Array> {
  const data = await readFile(
    new URL(`../testdata/tar/${name}`, import.meta.url),
  );
  // A plain Uint8Array, so deepEqual does not trip over Buffer's prototype.
  return new Uint8Array(data);
}

/** The body bytes `make.py` writes: `(i * 7 + 3) % 256`. */
function pattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + 3) % 256;
  return out;
}

/** Read every chunk, one `read()` at a time. */
async function readChunks(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  await collect(stream, chunks);
  return chunks;
}

/**
 * Read until the stream errors; return the chunks seen before the error and
 * the error itself.
 */
async function readUntilError(
  stream: ReadableStream<Uint8Array>,
): Promise<{ chunks: Uint8Array[]; error: unknown }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    try {
      const { done, value } = await reader.read();
      if (done) assert.fail("stream ended without an error");
      chunks.push(value);
    } catch (error) {
      return { chunks, error };
    }
  }
}

/** A pull-based body stream handing out `bytes` in `chunkSize` pieces. */
function chunked(
  bytes: Uint8Array,
  chunkSize: number,
  onCancel?: (reason: unknown) => void,
): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + chunkSize));
      offset += chunkSize;
    },
    cancel: onCancel,
  }, { highWaterMark: 0 });
}

const SMALL: [string, Uint8Array][] = [
  ["hello.txt", encoder.encode("hello\n")],
  ["empty.txt", new Uint8Array(0)],
  ["dir/exact-512.bin", pattern(512)],
  ["dir/odd-1000.bin", pattern(1000)],
  ["dir/big-12345.bin", pattern(12345)],
];

const PAX: [string, Uint8Array][] = [
  ["long/" + "n".repeat(92) + ".txt", encoder.encode("long\n")],
  ["x".repeat(96) + ".txt", new Uint8Array(0)],
  ["h\u00e9llo/w\u00f6rld-\u{1F600}.txt", encoder.encode("unicode\n")],
  ["\u00e9".repeat(46), pattern(3)],
  ["deep/".repeat(39) + "deep.bin", pattern(600)],
];

function asEntries(
  files: [string, Uint8Array][],
  chunkSize?: number,
): TarEntry[] {
  return files.map(([name, bytes]) => ({
    name,
    size: bytes.length,
    body: chunkSize === undefined ? bytes : () => chunked(bytes, chunkSize),
  }));
}

test("tarStream() writes Python's bytes for small entries", async () => {
  const expected = await fixture("small.tar");
  assertSameBytes(await readAll(tarStream(asEntries(SMALL))), expected);
  assertSameBytes(await readAll(tarStream(asEntries(SMALL, 4096))), expected);
});

test("tarStream() accepts an async iterable of entries", async () => {
  async function* entries() {
    for (const entry of asEntries(SMALL, 700)) yield entry;
  }
  assertSameBytes(
    await readAll(tarStream(entries())),
    await fixture("small.tar"),
  );
});

test("tarStream() writes Python's PAX path headers for long and non-ASCII names", async () => {
  const expected = await fixture("pax.tar");
  assertSameBytes(await readAll(tarStream(asEntries(PAX))), expected);
  assertSameBytes(await readAll(tarStream(asEntries(PAX, 100))), expected);
});

test("tarStream() gives identical bytes when read in many small pieces", async () => {
  const expected = await fixture("small.tar");
  // Bodies arrive in 1..13-byte chunks and every chunk is its own read().
  const sizes = [1, 2, 3, 5, 7, 13];
  const entries = SMALL.map(([name, bytes], i): TarEntry => ({
    name,
    size: bytes.length,
    body: () => chunked(bytes, sizes[i % sizes.length]),
  }));
  const chunks = await readChunks(tarStream(entries));
  assert.ok(chunks.length > 12345 / 13, `only ${chunks.length} chunks`);
  assertSameBytes(concat(chunks), expected);
  // A second, independent run gives the same bytes.
  assertSameBytes(await readAll(tarStream(asEntries(SMALL, 1))), expected);
});

test("tarStream() passes body chunks through without copying", async () => {
  const first = pattern(600);
  const second = pattern(400);
  const whole = pattern(1000);
  const chunks = await readChunks(tarStream([
    {
      name: "a.bin",
      size: 1000,
      body: () =>
        new ReadableStream({
          start(controller) {
            controller.enqueue(first);
            controller.enqueue(second);
            controller.close();
          },
        }),
    },
    { name: "b.bin", size: whole.length, body: whole },
  ]));
  assert.equal(chunks[1], first);
  assert.equal(chunks[2], second);
  assert.equal(chunks[5], whole);
});

test("tarHeader() matches Python for an 8 GiB entry", async () => {
  assertSameBytes(
    tarHeader("big.bin", 8 * 1024 ** 3),
    await fixture("header-8gib.bin"),
  );
});

test("tarHeader() matches Python for the largest ustar size", async () => {
  assertSameBytes(
    tarHeader("max.bin", 8 ** 11 - 1),
    await fixture("header-ustar-max.bin"),
  );
});

test("tarHeader() orders PAX path before size like Python", async () => {
  assertSameBytes(
    tarHeader("gr\u00f6\u00dfe/" + "z".repeat(100) + ".bin", 8 * 1024 ** 3 + 1),
    await fixture("header-8gib-path.bin"),
  );
});

test("tarHeader() rejects invalid names and sizes", () => {
  assert.throws(() => tarHeader("", 1), TypeError);
  assert.throws(() => tarHeader("a\0b", 1), TypeError);
  assert.throws(() => tarHeader("bad\ud800", 1), TypeError);
  assert.throws(() => tarHeader("a", -1), RangeError);
  assert.throws(() => tarHeader("a", 1.5), RangeError);
  assert.throws(() => tarHeader("a", Number.MAX_SAFE_INTEGER + 1), RangeError);
  assert.throws(() => tarHeader("a", NaN), RangeError);
});

test("tarSize() equals the length of the written archive", async () => {
  for (const files of [SMALL, PAX, [], SMALL.slice(0, 1)]) {
    const written = await readAll(tarStream(asEntries(files)));
    assert.equal(tarSize(asEntries(files)), written.length);
    assert.equal(written.length % RECORD_SIZE, 0);
  }
  assert.equal(tarSize(asEntries(SMALL)), (await fixture("small.tar")).length);
  assert.equal(tarSize(asEntries(PAX)), (await fixture("pax.tar")).length);
  assert.equal(tarSize([]), RECORD_SIZE);
});

test("tarSize() counts the PAX header of an 8 GiB entry", async () => {
  const size = 8 * 1024 ** 3;
  const header = (await fixture("header-8gib.bin")).length;
  const raw = header + size + 2 * BLOCK_SIZE;
  const expected = Math.ceil(raw / RECORD_SIZE) * RECORD_SIZE;
  assert.equal(tarSize([{ name: "big.bin", size }]), expected);
});

test("tarStream() output reads back with modern-tar", async () => {
  const files = [...SMALL, ...PAX];
  const unpacked = await unpackTar(tarStream(asEntries(files, 333)));
  assert.deepEqual(
    unpacked.map((e) => [e.header.name, e.header.size]),
    files.map(([name, bytes]) => [name, bytes.length]),
  );
  for (const [i, entry] of unpacked.entries()) {
    assertSameBytes(new Uint8Array(entry.data ?? []), files[i][1]);
    assert.equal(entry.header.mode, 0o644);
  }
});

test("tarStream() errors when a body is too long", async () => {
  const body = pattern(1000);
  const { chunks, error } = await readUntilError(tarStream([
    { name: "ok.txt", size: 3, body: encoder.encode("ok\n") },
    { name: "long.bin", size: 999, body: () => chunked(body, 600) },
  ]));
  assert.ok(error instanceof RangeError);
  assert.equal(
    error.message,
    'Cannot write tar entry "long.bin": body has 1000 bytes, expected 999',
  );
  // Header, body, padding of ok.txt; header and first 600 bytes of long.bin.
  assert.deepEqual(chunks.map((c) => c.length), [512, 3, 509, 512, 600]);
});

test("tarStream() cancels the body and closes the entries after an overflow", async () => {
  let cancelReason: unknown = "not called";
  let returned = false;
  async function* entries(): AsyncGenerator<TarEntry> {
    try {
      yield {
        name: "long.bin",
        size: 10,
        body: () => chunked(pattern(20), 8, (r) => cancelReason = r),
      };
    } finally {
      returned = true;
    }
  }
  const { error } = await readUntilError(tarStream(entries()));
  assert.ok(error instanceof RangeError);
  assert.equal(cancelReason, error);
  assert.equal(returned, true);
});

test("tarStream() errors when a body is too short", async () => {
  const { chunks, error } = await readUntilError(tarStream([
    { name: "short.bin", size: 1001, body: () => chunked(pattern(1000), 500) },
  ]));
  assert.ok(error instanceof RangeError);
  assert.equal(
    error.message,
    'Cannot write tar entry "short.bin": body has 1000 bytes, expected 1001',
  );
  // No padding and no end-of-archive blocks after the failure.
  assert.deepEqual(chunks.map((c) => c.length), [512, 500, 500]);
});

test("tarStream() errors before the header when a Uint8Array body has the wrong size", async () => {
  const { chunks, error } = await readUntilError(tarStream([
    { name: "bytes.bin", size: 4, body: encoder.encode("abc") },
  ]));
  assert.ok(error instanceof RangeError);
  assert.match(error.message, /body has 3 bytes, expected 4/);
  assert.equal(chunks.length, 0);
});

test("tarStream() errors on an invalid entry", async () => {
  for (
    const [entry, type] of [
      [{ name: "", size: 0, body: new Uint8Array(0) }, TypeError],
      [{ name: "a", size: -1, body: new Uint8Array(0) }, RangeError],
      [{ name: "a", size: 0.5, body: new Uint8Array(0) }, RangeError],
    ] as const
  ) {
    const { chunks, error } = await readUntilError(tarStream([entry]));
    assert.ok(error instanceof type, String(error));
    assert.equal(chunks.length, 0);
  }
});

test("tarStream() errors when the entries iterator throws", async () => {
  const boom = new Error("boom");
  async function* entries(): AsyncGenerator<TarEntry> {
    yield { name: "a.txt", size: 1, body: encoder.encode("a") };
    throw boom;
  }
  const { chunks, error } = await readUntilError(tarStream(entries()));
  assert.equal(error, boom);
  assert.deepEqual(chunks.map((c) => c.length), [512, 1, 511]);
});

test("tarStream() errors when a body stream errors", async () => {
  const boom = new Error("disk gone");
  const { error } = await readUntilError(tarStream([{
    name: "a.bin",
    size: 10,
    body: () =>
      new ReadableStream({
        pull(controller) {
          controller.enqueue(new Uint8Array(4));
          controller.error(boom);
        },
      }),
  }]));
  assert.equal(error, boom);
});

test("tarStream() errors when a body function throws", async () => {
  const boom = new Error("cannot open");
  const { error } = await readUntilError(tarStream([{
    name: "a.bin",
    size: 10,
    body: () => Promise.reject(boom),
  }]));
  assert.equal(error, boom);
});

test("tarStream() cancels the open body and the entries iterator on cancel", async () => {
  let cancelReason: unknown = "not called";
  let returned = false;
  async function* entries(): AsyncGenerator<TarEntry> {
    try {
      yield {
        name: "a.bin",
        size: 1000,
        body: () => chunked(pattern(1000), 100, (r) => cancelReason = r),
      };
      yield { name: "never.bin", size: 0, body: new Uint8Array(0) };
    } finally {
      returned = true;
    }
  }
  const reader = tarStream(entries()).getReader();
  await reader.read(); // header
  await reader.read(); // first body chunk: the body is open
  const reason = new Error("client went away");
  await reader.cancel(reason);
  assert.equal(cancelReason, reason);
  assert.equal(returned, true);
});

test("tarStream() cancels a body whose read is pending", async () => {
  let cancelReason: unknown = "not called";
  const stream = tarStream([{
    name: "slow.bin",
    size: 10,
    body: () =>
      new ReadableStream<Uint8Array>({
        pull: () => new Promise(() => {}), // never produces
        cancel: (r) => {
          cancelReason = r;
        },
      }),
  }]);
  const reader = stream.getReader();
  await reader.read(); // header
  const pending = reader.read();
  await new Promise((resolve) => setTimeout(resolve, 10));
  await reader.cancel("stop");
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.equal(cancelReason, "stop");
});

test("tarStream() does nothing until read and opens bodies lazily", async () => {
  const log: string[] = [];
  function* entries(): Generator<TarEntry> {
    for (const name of ["a.bin", "b.bin"]) {
      log.push(`next ${name}`);
      yield {
        name,
        size: 3,
        body: () => {
          log.push(`open ${name}`);
          return chunked(encoder.encode("abc"), 3);
        },
      };
    }
    log.push("done");
  }
  const reader = tarStream(entries()).getReader();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(log, []);

  await reader.read(); // a.bin header
  assert.deepEqual(log, ["next a.bin"]);
  await reader.read(); // a.bin body
  assert.deepEqual(log, ["next a.bin", "open a.bin"]);
  await reader.read(); // a.bin padding; b.bin not yet requested
  assert.deepEqual(log, ["next a.bin", "open a.bin"]);
  await reader.read(); // b.bin header
  assert.deepEqual(log, ["next a.bin", "open a.bin", "next b.bin"]);
  await reader.read(); // b.bin body
  await reader.read(); // b.bin padding
  assert.deepEqual(log, [
    "next a.bin",
    "open a.bin",
    "next b.bin",
    "open b.bin",
  ]);
  const end = await reader.read();
  assert.equal(end.value?.length, RECORD_SIZE - 4 * BLOCK_SIZE);
  assert.equal((await reader.read()).done, true);
  assert.deepEqual(log.at(-1), "done");
});
