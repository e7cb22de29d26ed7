/**
 * `save()` as a stream: it reads only as far as its consumer, stops reading
 * when cancelled, handles layers of 8 GiB and more, and errors (without the
 * tarball's end) when a large layer turns out wrong while streaming. Layers
 * are generated on the fly by instrumented inline images (tests/_streams.ts);
 * expected digests come from node:crypto.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTarDecoder } from "modern-tar";
import type { Descriptor, Image } from "../../src/model/image.ts";
import { save, type SaveOptions } from "../../src/save/save.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { PREFETCH_BUDGET } from "../../src/save/prefetch.ts";
import { digestChunks, digestOf, sha256Hex } from "../_kit/digest.ts";
import { MEDIA } from "../_kit/format.ts";
import {
  appendBytes,
  type ChunkSource,
  flipByteAt,
  type GeneratedLayer,
  gzipChunks,
  gzipLayer,
  type ImageStats,
  MiB,
  plainChunks,
  plainLayer,
  testImage,
} from "../_kit/generated.ts";
import { TarTracker } from "../_kit/tar.ts";
import { sleep } from "../_kit/time.ts";

/**
 * How far the source of the layer being written may be pulled ahead of the
 * bytes of that layer the consumer has received (for gzip: compressed bytes
 * pulled against uncompressed bytes received; the generated data does not
 * compress, so the two run level).
 */
const READ_AHEAD_BOUND = 2 * MiB;
/** Where the consumer stops reading a layer body. */
const STALL_AT = 1 * MiB;
/** How long the consumer stalls. */
const STALL_MS = 300;

const VERBOSE = typeof process !== "undefined" &&
  process.env?.STREAMING_TEST_VERBOSE === "1";

function log(...args: unknown[]): void {
  if (VERBOSE) console.log("[streaming]", ...args);
}

function memo<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => value ??= make();
}

// Generated once per file, digests streamed with node:crypto.
const plain64 = memo(() => plainLayer(64 * MiB, 1));
const gzip64 = memo(() => gzipLayer(64 * MiB, 2));
const gzip32 = memo(() => gzipLayer(32 * MiB, 3));
const gzip1 = memo(() => gzipLayer(1 * MiB, 4));

const TAG = "registry.example.com/streaming:v1";

/** A consumer of save()'s output that follows the tar structure. */
class Consumer {
  readonly tracker = new TarTracker();
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  received = 0;
  /** The last (up to) 1024 bytes received. */
  tail = new Uint8Array(0);

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  /** Reads one chunk; false at the end. */
  async step(): Promise<boolean> {
    const { done, value } = await this.reader.read();
    if (done) return false;
    this.received += value.byteLength;
    this.tracker.push(value);
    const tail = new Uint8Array(
      Math.min(1024, this.tail.byteLength + value.byteLength),
    );
    const keep = Math.max(0, tail.byteLength - value.byteLength);
    tail.set(this.tail.subarray(this.tail.byteLength - keep));
    tail.set(value.subarray(value.byteLength - (tail.byteLength - keep)), keep);
    this.tail = tail;
    return true;
  }

  /** Whether what was received ends with two zero blocks. */
  endsWithTarEnd(): boolean {
    return this.tail.byteLength === 1024 && this.tail.every((b) => b === 0);
  }

  /** Reads until `until()` holds (checked after each chunk) or the end. */
  async readUntil(until: () => boolean): Promise<void> {
    while (!until()) {
      if (!await this.step()) return;
    }
  }

  /** Reads to the end. */
  async readAll(): Promise<void> {
    while (await this.step());
  }

  /** Whether it is at least `bytes` into a layer.tar body. */
  inLayerBody(bytes: number): boolean {
    const current = this.tracker.current;
    return current !== undefined && current.name.endsWith("/layer.tar") &&
      this.tracker.bodyReceived >= bytes;
  }

  layerMembers(): string[] {
    return this.tracker.members.map((m) => m.name).filter((name) =>
      name.endsWith("/layer.tar")
    );
  }
}

/** The stream stats of the latest openLayer call for `digest`. */
function lastStream(stats: ImageStats, digest: string) {
  const found = stats.streams.filter((s) => s.digest === digest).at(-1);
  assert.ok(found, `openLayer was not called for ${digest}`);
  return found;
}

function opens(stats: ImageStats, digest?: string): number {
  return stats.calls.filter((call) =>
    call.startsWith("openLayer") &&
    (digest === undefined || call === `openLayer ${digest}`)
  ).length;
}

interface StallMeasure {
  received: number;
  pulledAtStall: number;
  pulledMid: number;
  pulledEnd: number;
}

/**
 * Stalls the consumer for STALL_MS and samples how much was pulled from the
 * source stream meanwhile.
 */
async function stall(
  consumer: Consumer,
  pulled: () => number,
): Promise<StallMeasure> {
  const received = consumer.tracker.bodyReceived;
  const pulledAtStall = pulled();
  await sleep(STALL_MS / 3);
  const pulledMid = pulled();
  await sleep(STALL_MS - STALL_MS / 3);
  return { received, pulledAtStall, pulledMid, pulledEnd: pulled() };
}

function assertBounded(what: string, m: StallMeasure): void {
  log(
    what,
    `received ${m.received}`,
    `pulled ${m.pulledAtStall} -> ${m.pulledMid} -> ${m.pulledEnd}`,
    `ahead ${((m.pulledEnd - m.received) / MiB).toFixed(3)} MiB`,
  );
  assert.ok(m.received >= STALL_AT, `${what}: consumer stopped early`);
  assert.ok(
    m.pulledEnd - m.received <= READ_AHEAD_BOUND,
    `${what}: ${m.pulledEnd} bytes pulled for ${m.received} received, more than ${READ_AHEAD_BOUND} ahead`,
  );
  assert.equal(
    m.pulledEnd,
    m.pulledMid,
    `${what}: the source kept being pulled while the consumer stalled`,
  );
}

/**
 * Reads to one layer.tar body, stalls there and checks the read-ahead, for
 * each layer in the order they are written, then reads to the end and checks
 * each layer.tar body against its diff_id (or blob digest when compressed).
 */
async function assertBoundedReadAhead(
  layers: { layer: GeneratedLayer; uncompressedSize?: "known" }[],
  options: SaveOptions = {},
): Promise<ImageStats> {
  const compressed = options.layers === "compressed";
  const { image, stats } = testImage(layers);
  // One layer at a time: fetching ahead has a bound of its own (below).
  const consumer = new Consumer(
    save([[TAG, image]], { concurrency: 1, ...options }),
  );
  const hashes = new Map<string, ReturnType<typeof createHash>>();
  consumer.tracker.onBody = (member, bytes) => {
    if (!member.name.endsWith("/layer.tar")) return;
    let hash = hashes.get(member.name);
    if (!hash) hashes.set(member.name, hash = createHash("sha256"));
    hash.update(bytes);
  };
  // The top layer is written first.
  const written = layers.map(({ layer }) => layer).reverse();
  for (const [i, layer] of written.entries()) {
    await consumer.readUntil(() =>
      consumer.layerMembers().length > i && consumer.inLayerBody(STALL_AT)
    );
    const source = lastStream(stats, layer.digest);
    assertBounded(
      `${layer.mediaType.endsWith("gzip") ? "gzip" : "plain"} layer${
        compressed ? " (compressed)" : ""
      }`,
      await stall(consumer, () => source.pulled),
    );
  }
  await consumer.readAll();

  assert.ok(consumer.tracker.ended, "the tarball has no end blocks");
  assert.ok(consumer.endsWithTarEnd());
  assert.equal(consumer.received % 10240, 0);
  assert.equal(consumer.tracker.members.at(-1)?.name, "manifest.json");
  const members = consumer.tracker.members.filter((m) =>
    m.name.endsWith("/layer.tar")
  );
  assert.deepEqual(
    members.map((m) => m.size),
    written.map((l) => compressed ? l.size : l.uncompressedSize),
  );
  assert.deepEqual(
    members.map((m) => `sha256:${hashes.get(m.name)!.digest("hex")}`),
    written.map((l) => compressed ? l.digest : l.diffId),
  );
  return stats;
}

test("save() pulls a bounded amount ahead of a stalled consumer", {
  timeout: 60_000,
}, async () => {
  const plain = await plain64();
  const stats = await assertBoundedReadAhead([{ layer: plain }]);
  assert.equal(opens(stats), 1);
});

test(
  "save() pulls a bounded amount ahead of a stalled consumer in gzip layers",
  { timeout: 60_000 },
  async () => {
    const plain = await plain64();
    const gzip = await gzip64();
    const stats = await assertBoundedReadAhead([
      { layer: plain },
      { layer: gzip, uncompressedSize: "known" },
    ]);
    // Known sizes: one pass per layer.
    assert.equal(opens(stats, plain.digest), 1);
    assert.equal(opens(stats, gzip.digest), 1);
  },
);

test(
  'save() pulls a bounded amount ahead of a stalled consumer with layers: "compressed"',
  { timeout: 60_000 },
  async () => {
    const plain = await plain64();
    const gzip = await gzip32();
    const stats = await assertBoundedReadAhead(
      [{ layer: plain }, { layer: gzip }],
      { layers: "compressed" },
    );
    assert.equal(opens(stats), 2);
  },
);

test(
  "save() fetches the next layer ahead, within PREFETCH_BUDGET, and stops while the consumer stalls",
  { timeout: 60_000 },
  async () => {
    const plain = await plain64();
    const gzip = await gzip64();
    const layers = [{ layer: plain }, {
      layer: gzip,
      uncompressedSize: "known" as const,
    }];
    const { image, stats } = testImage(layers);
    const consumer = new Consumer(save([[TAG, image]], { concurrency: 2 }));
    // The top layer (gzip) is written first; the plain one is fetched ahead.
    await consumer.readUntil(() => consumer.inLayerBody(STALL_AT));
    await sleep(STALL_MS);
    const ahead = lastStream(stats, plain.digest);
    const pulled = () => stats.streams.reduce((n, s) => n + s.pulled, 0);
    const m = await stall(consumer, pulled);
    log("prefetch", `next layer pulled ${ahead.pulled}`, `all ${m.pulledEnd}`);
    assert.ok(
      ahead.pulled > READ_AHEAD_BOUND,
      "the next layer was fetched ahead",
    );
    assert.ok(
      m.pulledEnd - m.received <= PREFETCH_BUDGET + READ_AHEAD_BOUND,
      `${m.pulledEnd} bytes pulled for ${m.received} received`,
    );
    assert.equal(m.pulledEnd, m.pulledMid, "still pulling while stalled");
    await consumer.readAll();
    assert.ok(consumer.endsWithTarEnd());
    // One open per layer: the blob fetched ahead is the one written.
    assert.equal(opens(stats, plain.digest), 1);
    assert.equal(opens(stats, gzip.digest), 1);
  },
);

test(
  "save() pulls a bounded amount ahead in the second pass over a gzip layer of unknown size",
  { timeout: 60_000 },
  async () => {
    const gzip = await gzip64();
    const { image, stats } = testImage([{ layer: gzip }]);
    const consumer = new Consumer(save([[TAG, image]]));
    await consumer.readUntil(() => consumer.inLayerBody(STALL_AT));
    assert.equal(consumer.tracker.current?.size, 64 * MiB);
    // The counting pass read the blob once to its end; the writing pass is
    // the second stream.
    assert.equal(stats.streams.length, 2);
    assert.ok(stats.streams[0].done);
    assert.equal(stats.streams[0].pulled, gzip.size);
    const source = stats.streams[1];
    assertBounded(
      "gzip layer, second pass",
      await stall(consumer, () => source.pulled),
    );
    await consumer.reader.cancel("done");
  },
);

test(
  "save() pulls no layer bytes ahead of a consumer that stalls in the config member",
  { timeout: 30_000 },
  async () => {
    const { image, stats } = testImage([{ layer: await plain64() }]);
    const consumer = new Consumer(save([[TAG, image]]));
    assert.ok(await consumer.step());
    await sleep(100);
    assert.equal(opens(stats), 0);
    await consumer.reader.cancel("done");
  },
);

// --- Cancel -----------------------------------------------------------------

interface CancelCase {
  name: string;
  layer: () => Promise<GeneratedLayer>;
  uncompressedSize?: "known" | "unknown";
  options?: SaveOptions;
  /** Whether the bytes pass through gunzip. */
  gunzips: boolean;
}

const CANCEL_CASES: CancelCase[] = [
  {
    name: "a plain layer",
    layer: plain64,
    gunzips: false,
  },
  {
    name: "a gzip layer of known size",
    layer: gzip32,
    uncompressedSize: "known",
    gunzips: true,
  },
  {
    name: "a gzip layer, in the second pass",
    layer: gzip32,
    gunzips: true,
  },
  {
    name: 'a gzip layer in layers: "compressed" mode',
    layer: gzip32,
    options: { layers: "compressed" },
    gunzips: false,
  },
];

for (const c of CANCEL_CASES) {
  test(`cancelling save() mid-layer cancels ${c.name} and stops pulling`, {
    timeout: 60_000,
  }, async () => {
    const layer = await c.layer();
    const { image, stats } = testImage([{
      layer,
      uncompressedSize: c.uncompressedSize,
    }]);
    const consumer = new Consumer(save([[TAG, image]], c.options));
    await consumer.readUntil(() => consumer.inLayerBody(STALL_AT));
    assert.ok(consumer.inLayerBody(STALL_AT), "never reached the layer body");
    const source = stats.streams.at(-1)!;
    assert.equal(source.cancels.length, 0);

    await consumer.reader.cancel("stop");
    const pullsAtCancel = source.pulls;
    const pulledAtCancel = source.pulled;
    // The cancel may reach the source a little later, through the pipes.
    for (let i = 0; i < 20 && source.cancels.length === 0; i++) await sleep(5);
    const pulledAtSourceCancel = source.pulled;
    await sleep(100);

    log(
      `cancel ${c.name}: reason`,
      source.cancels,
      `pull() calls ${pullsAtCancel} -> ${source.pulls}`,
      `pulled ${pulledAtCancel} -> ${source.pulled}`,
    );
    assert.equal(
      source.cancels.length,
      1,
      "the layer stream was not cancelled",
    );
    assert.equal(source.cancels[0], "stop", "the cancel reason was lost");
    assert.equal(source.pullsAfterCancel, 0, "pull() called after cancel()");
    assert.equal(source.pulled, pulledAtSourceCancel, "pulled after cancel");
    if (c.gunzips) {
      // The cancel reaches the blob through the gunzip stage
      // asynchronously: a read or two in flight may still
      // complete, never more than the read-ahead bound.
      assert.ok(
        source.pulled - pulledAtCancel <= READ_AHEAD_BOUND,
        `pulled ${
          source.pulled - pulledAtCancel
        } bytes after the consumer's cancel() resolved`,
      );
    } else {
      assert.equal(
        source.pulls,
        pullsAtCancel,
        "pull() called after the consumer's cancel() resolved",
      );
    }
    assert.ok(!source.done, "the layer was read to its end");
    // Every earlier stream (the counting pass) ran to its end.
    for (const earlier of stats.streams.slice(0, -1)) assert.ok(earlier.done);
    assert.equal(opens(stats), stats.streams.length);
  });
}

test(
  "cancelling save() while it counts a gzip layer's size cancels the counting pass",
  { timeout: 60_000 },
  async () => {
    const layer = await gzip32();
    const holder: { consumer?: Consumer } = {};
    let cancelled: Promise<void> | undefined;
    let pulledAtCancel = -1;
    const { image, stats } = testImage([{
      layer,
      onChunk: (source) => {
        if (source.pulled < STALL_AT || cancelled) return;
        pulledAtCancel = source.pulled;
        cancelled = holder.consumer!.reader.cancel("stop");
      },
    }]);
    const consumer = holder.consumer = new Consumer(save([[TAG, image]]));
    // The read that would return the layer.tar header starts the counting.
    await consumer.readUntil(() => cancelled !== undefined);
    const started = performance.now();
    await cancelled;
    const waited = performance.now() - started;
    await sleep(50);
    const source = stats.streams[0];
    log("cancel while counting:", {
      waited,
      pulledAtCancel,
      pulled: source.pulled,
      cancels: source.cancels,
    });
    assert.equal(stats.streams.length, 1);
    assert.ok(!source.done, "the counting pass read the blob to its end");
    assert.equal(
      source.cancels.length,
      1,
      "the counting pass was not cancelled",
    );
    assert.ok(
      source.pulled - pulledAtCancel <= READ_AHEAD_BOUND,
      `pulled ${source.pulled - pulledAtCancel} bytes after cancel`,
    );
  },
);

/** The paths /proc/self/fd points at, or undefined without /proc. */
function openFiles(): string[] | undefined {
  if (!existsSync("/proc/self/fd")) return undefined;
  const targets: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      targets.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed meanwhile (e.g. the fd readdir used)
    }
  }
  return targets;
}

/** Writes generated chunks to a file, one at a time. */
async function writeChunks(
  path: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<void> {
  const file = await open(path, "w");
  try {
    for await (const chunk of chunks) await file.write(chunk);
  } finally {
    await file.close();
  }
}

/**
 * An OCI layout in a temp dir whose one layer is an 8 MiB blob file (plain
 * or gzip), written from the generators.
 */
async function bigLayout(kind: "plain" | "gzip"): Promise<{
  dir: string;
  blobPath: string;
  layer: Descriptor;
  dispose(): void;
}> {
  const root = mkdtempSync(join(tmpdir(), "docker-save-streaming-"));
  const dir = join(root, "oci");
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const size = 8 * MiB;
  const chunks = () =>
    kind === "plain" ? plainChunks(size, 5) : gzipChunks(size, 5);
  const blob = await digestChunks(chunks());
  const diffId = (await digestChunks(plainChunks(size, 5))).digest;
  const blobPath = join(blobs, blob.digest.slice(7));
  await writeChunks(blobPath, chunks());
  const layer: Descriptor = {
    mediaType: kind === "plain" ? MEDIA.ociLayerTar : MEDIA.ociLayerGzip,
    digest: blob.digest,
    size: blob.size,
  };
  const write = (text: string) => {
    const digest = digestOf(text);
    writeFileSync(join(blobs, digest.slice(7)), text);
    return { digest, size: new TextEncoder().encode(text).byteLength };
  };
  const config = write(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [diffId] },
  }));
  const manifest = write(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, ...config },
    layers: [layer],
  }));
  writeFileSync(
    join(dir, "oci-layout"),
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: MEDIA.ociManifest,
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "big" },
      }],
    }),
  );
  return {
    dir,
    blobPath,
    layer,
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Wraps an image so every stream openLayer returns records its cancel. */
function watchCancels(image: Image): { image: Image; cancels: unknown[] } {
  const cancels: unknown[] = [];
  return {
    cancels,
    image: {
      ...image,
      openLayer: async (layer) => {
        const reader = (await image.openLayer(layer)).getReader();
        return new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          cancel: (reason) => {
            cancels.push(reason);
            return reader.cancel(reason);
          },
        }, { highWaterMark: 0 });
      },
    },
  };
}

for (
  const [kind, options] of [
    ["plain", {}],
    ["gzip", {}],
    ["gzip", { layers: "compressed" }],
  ] as const
) {
  test(
    `cancelling save() mid-layer closes the ${kind} blob file of an OCI layout${
      options.layers ? ` (${options.layers})` : ""
    }`,
    {
      timeout: 60_000,
      // Where gunzip reads ahead, the whole blob may be read (and the file
      // closed at its end) before the consumer is 1 MiB in.
    },
    async () => {
      const layout = await bigLayout(kind);
      try {
        const before = openFiles();
        const watched = watchCancels(await fromOciLayout(layout.dir, "big"));
        const consumer = new Consumer(
          save([[TAG, watched.image]], options as SaveOptions),
        );
        await consumer.readUntil(() => consumer.inLayerBody(STALL_AT));
        assert.ok(
          consumer.inLayerBody(STALL_AT),
          "never reached the layer body",
        );
        const during = openFiles();
        if (during) {
          assert.ok(
            during.includes(layout.blobPath),
            "the blob file is not open mid-layer",
          );
        }
        await consumer.reader.cancel("stop");
        await sleep(50);
        assert.equal(watched.cancels.length, 1);
        const after = openFiles();
        if (before && after) {
          assert.ok(
            !after.includes(layout.blobPath),
            "the blob file is still open after cancel",
          );
          assert.ok(!before.includes(layout.blobPath));
        }
      } finally {
        layout.dispose();
      }
    },
  );
}

// --- 8 GiB ------------------------------------------------------------------

const HUGE_SIZE = 8 * 1024 * MiB + 512;

/** A stream of `size` zeros from one reused 1 MiB chunk. */
function zeroChunks(size: number): ChunkSource {
  const zeros = new Uint8Array(MiB);
  let offset = 0;
  return {
    next: () => {
      if (offset >= size) {
        return Promise.resolve({ done: true, value: undefined });
      }
      const n = Math.min(MiB, size - offset);
      offset += n;
      return Promise.resolve({
        done: false,
        value: n === MiB ? zeros : zeros.subarray(0, n),
      });
    },
  };
}

/** Python tarfile's header length for a regular file (PAX when needed). */
function headerLength(name: string, size: number): number {
  assert.ok(name.length <= 100 && /^[\x20-\x7e]*$/.test(name));
  if (size < 8 ** 11) return 512;
  const value = String(size);
  let record = " size=".length + value.length + 1;
  record += String(record + 2).length;
  return 512 + Math.ceil(record / 512) * 512 + 512;
}

test("save() writes a layer of 8 GiB + 512 bytes with a PAX size record", {
  timeout: 180_000,
}, async () => {
  const started = performance.now();
  const layer: GeneratedLayer = {
    mediaType: MEDIA.ociLayerTar,
    // Not checked (verify: false), but well-formed.
    digest: digestOf("8 GiB + 512 zeros, blob"),
    size: HUGE_SIZE,
    diffId: digestOf("8 GiB + 512 zeros, diff_id"),
    uncompressedSize: HUGE_SIZE,
    open: () => zeroChunks(HUGE_SIZE),
  };
  const { image, stats, configBytes } = testImage([
    { layer, uncompressedSize: "known" },
  ]);
  let total = 0;
  let head = new Uint8Array(0);
  const counted = save([[TAG, image]], { verify: false }).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        // Keep the first 8 KiB only: it holds the layer's PAX header.
        if (head.byteLength < 8192) {
          const next = new Uint8Array(head.byteLength + chunk.byteLength);
          next.set(head);
          next.set(chunk, head.byteLength);
          head = next.slice(0, 8192);
        }
        total += chunk.byteLength;
        controller.enqueue(chunk);
      },
    }),
  );
  const members: { name: string; size: number; text?: string }[] = [];
  const entries = counted.pipeThrough(createTarDecoder({ strict: true }));
  const reader = entries.getReader();
  for (;;) {
    const { done, value: entry } = await reader.read();
    if (done) break;
    const { name, size } = entry.header;
    if (name.endsWith("/layer.tar")) {
      await entry.body.cancel();
      members.push({ name, size });
    } else {
      const text = await new Response(entry.body).text();
      assert.equal(new TextEncoder().encode(text).byteLength, size);
      members.push({ name, size, text });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  log(`8 GiB + 512: ${total} bytes in ${seconds.toFixed(1)} s`);

  const configName = `${sha256Hex(configBytes)}.json`;
  assert.deepEqual(
    members.map((m) => m.name.replace(/^[0-9a-f]{64}\//, "<id>/")),
    [
      configName,
      "<id>/VERSION",
      "<id>/layer.tar",
      "<id>/json",
      "repositories",
      "manifest.json",
    ],
  );
  const layerMember = members.find((m) => m.name.endsWith("/layer.tar"))!;
  assert.equal(layerMember.size, HUGE_SIZE);
  assert.equal(members[0].text, new TextDecoder().decode(configBytes));
  assert.equal(members[1].text, "1.0");
  const v1Json = JSON.parse(members[3].text!);
  assert.equal(`${v1Json.id}/layer.tar`, layerMember.name);
  assert.equal(v1Json.os, "linux");
  const manifestJson = JSON.parse(members[5].text!);
  assert.deepEqual(manifestJson[0].Layers, [layerMember.name]);
  assert.deepEqual(manifestJson[0].RepoTags, [TAG]);
  assert.ok(JSON.parse(members[4].text!)["registry.example.com/streaming"]);

  // The PAX header as Python writes it: "19 size=8589935104\n".
  const record = `19 size=${HUGE_SIZE}\n`;
  assert.ok(
    new TextDecoder("latin1").decode(head).includes(record),
    "no PAX size record",
  );

  let expected = 0;
  for (const { name, size } of members) {
    expected += headerLength(name, size) + size + (512 - size % 512) % 512;
  }
  expected += 1024;
  expected += (10240 - expected % 10240) % 10240;
  assert.equal(total, expected);
  assert.equal(opens(stats), 1);
  assert.equal(stats.streams[0].pulled, HUGE_SIZE);
});

// --- Corrupt large layers ---------------------------------------------------

interface CorruptCase {
  name: string;
  layer: () => Promise<GeneratedLayer>;
  spec: (layer: GeneratedLayer) => {
    uncompressedSize?: "known" | "unknown" | number;
    diffId?: string;
    tamper?: (source: ChunkSource) => ChunkSource;
  };
  code: string;
  /** Whether the layer.tar header is written before the error. */
  headerWritten: boolean;
}

const CORRUPT_CASES: CorruptCase[] = [
  {
    name: "a gzip blob's last byte is flipped (found while counting)",
    layer: gzip32,
    spec: (layer) => ({ tamper: flipByteAt(layer.size - 1) }),
    code: "DIGEST_MISMATCH",
    headerWritten: false,
  },
  {
    name: "a gzip blob's last byte is flipped (found while writing)",
    layer: gzip32,
    spec: (layer) => ({
      uncompressedSize: "known",
      tamper: flipByteAt(layer.size - 1),
    }),
    code: "DIGEST_MISMATCH",
    headerWritten: true,
  },
  {
    name: "a gzip blob has one byte too many",
    layer: gzip32,
    spec: () => ({
      uncompressedSize: "known",
      tamper: appendBytes(new Uint8Array([0])),
    }),
    code: "SIZE_MISMATCH",
    headerWritten: true,
  },
  {
    name: "a gzip layer's diff_id is wrong",
    layer: gzip32,
    spec: () => ({ diffId: digestOf("not this layer") }),
    code: "DIFF_ID_MISMATCH",
    headerWritten: true,
  },
  {
    name: "a gzip layer's uncompressed size is one byte short",
    layer: gzip32,
    spec: (layer) => ({ uncompressedSize: layer.uncompressedSize - 1 }),
    code: "UNCOMPRESSED_SIZE_MISMATCH",
    headerWritten: true,
  },
  {
    name: "a gzip layer's uncompressed size is one byte long",
    layer: gzip32,
    spec: (layer) => ({ uncompressedSize: layer.uncompressedSize + 1 }),
    code: "UNCOMPRESSED_SIZE_MISMATCH",
    headerWritten: true,
  },
  {
    name: "a plain blob's last byte is flipped",
    layer: plain64,
    spec: (layer) => ({ tamper: flipByteAt(layer.size - 1) }),
    code: "DIGEST_MISMATCH",
    headerWritten: true,
  },
];

for (const c of CORRUPT_CASES) {
  test(`save() errors mid-stream when ${c.name}`, {
    timeout: 60_000,
  }, async () => {
    const layer = await c.layer();
    const { image } = testImage([{ layer, ...c.spec(layer) }]);
    const consumer = new Consumer(save([[TAG, image]]));
    await assert.rejects(
      consumer.readAll(),
      (error: Error & { code?: string }) => {
        assert.equal(error.name, "DockerSaveError");
        assert.equal(error.code, c.code);
        assert.ok(
          error.message.includes(layer.digest),
          `the message does not name the layer: ${error.message}`,
        );
        return true;
      },
    );
    const names = consumer.layerMembers();
    assert.equal(names.length, c.headerWritten ? 1 : 0);
    if (c.headerWritten) {
      // Most of the body went out, never all of it.
      const member = consumer.tracker.members.at(-1)!;
      assert.ok(member.name.endsWith("/layer.tar"));
      assert.ok(consumer.tracker.bodyReceived < member.size);
    }
    assert.ok(!consumer.tracker.ended, "the tarball's end was written");
    assert.ok(
      !consumer.tracker.members.some((m) => m.name === "manifest.json"),
    );
    assert.ok(
      !consumer.endsWithTarEnd(),
      "the bytes received end with two zero blocks",
    );
  });
}

// --- Laziness ---------------------------------------------------------------

for (const kind of ["plain", "gzip"] as const) {
  test(
    `save() opens no ${kind} layer before the consumer reads past the config member`,
    {
      timeout: 30_000,
    },
    async () => {
      const layer = kind === "plain" ? await plain64() : await gzip1();
      const { image, stats, configBytes } = testImage([{ layer }]);
      const stream = save([[TAG, image]]);
      await sleep(50);
      assert.equal(opens(stats), 0, "openLayer called before the first read");

      const consumer = new Consumer(stream);
      assert.ok(await consumer.step());
      assert.equal(opens(stats), 0, "openLayer called before the first chunk");
      // Read chunk by chunk; the first openLayer call must come after the
      // config member (its header, body and padding) was received.
      const configEnd = 512 + configBytes.byteLength +
        (512 - configBytes.byteLength % 512) % 512;
      let receivedAtOpen = -1;
      for (;;) {
        const before = consumer.received;
        if (!await consumer.step()) break;
        if (opens(stats) > 0) {
          receivedAtOpen = before;
          break;
        }
      }
      assert.ok(receivedAtOpen >= 0, "openLayer was never called");
      const config = consumer.tracker.members[0];
      assert.equal(config.size, configBytes.byteLength);
      assert.ok(config.name.endsWith(".json"));
      assert.ok(
        receivedAtOpen >= configEnd,
        `openLayer was called by a read after ${receivedAtOpen} bytes, within the config member (ends at ${configEnd})`,
      );
      await consumer.reader.cancel("done");
    },
  );
}

// --- layers: "compressed" ---------------------------------------------------

test('save() with layers: "compressed" writes the gzip blob as stored', {
  timeout: 60_000,
}, async () => {
  const layer = await gzip32();
  const { image, stats } = testImage([{ layer }]);
  const consumer = new Consumer(save([[TAG, image]], { layers: "compressed" }));
  const hash = createHash("sha256");
  let bodyBytes = 0;
  consumer.tracker.onBody = (member, bytes) => {
    if (!member.name.endsWith("/layer.tar")) return;
    hash.update(bytes);
    bodyBytes += bytes.byteLength;
  };
  await consumer.readAll();
  assert.ok(consumer.tracker.ended);
  const member = consumer.tracker.members.find((m) =>
    m.name.endsWith("/layer.tar")
  )!;
  assert.equal(member.size, layer.size);
  assert.equal(bodyBytes, layer.size);
  assert.equal(`sha256:${hash.digest("hex")}`, layer.digest);
  assert.equal(opens(stats), 1, "compressed mode reads each blob once");
  assert.ok(!stats.calls.some((call) => call.startsWith("uncompressedSize")));
});

test(
  'save() with layers: "compressed" errors DIGEST_MISMATCH on a wrong digest',
  {
    timeout: 60_000,
  },
  async () => {
    const layer = await gzip32();
    const wrong = digestOf("some other blob");
    const { image } = testImage([{ layer, descriptor: { digest: wrong } }]);
    const consumer = new Consumer(
      save([[TAG, image]], { layers: "compressed" }),
    );
    await assert.rejects(
      consumer.readAll(),
      (error: Error & { code?: string }) => {
        assert.equal(error.name, "DockerSaveError");
        assert.equal(error.code, "DIGEST_MISMATCH");
        assert.ok(error.message.includes(wrong), error.message);
        assert.ok(error.message.includes(layer.digest), error.message);
        return true;
      },
    );
    assert.ok(!consumer.tracker.ended);
    assert.ok(!consumer.endsWithTarEnd());
    assert.equal(consumer.layerMembers().length, 1);
    assert.ok(consumer.tracker.bodyReceived < layer.size);
  },
);
