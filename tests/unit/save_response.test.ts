/**
 * saveSize() and saveResponse(): exact lengths up front, strong ETags, and
 * byte ranges that equal the same slice of the full tarball, served
 * without reading what comes before them.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  buildImage,
  type Descriptor,
  fromMemory,
  type Image,
  save,
  saveResponse,
  saveSize,
} from "../../mod.ts";
import { concat, readAll } from "../_kit/bytes.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { layerTar } from "../_kit/tar.ts";
import { sha256Hex } from "../_kit/digest.ts";

const [basic] = goldenCases().filter((c) => c.name === "basic");

function request(headers: Record<string, string> = {}, method = "GET") {
  return new Request("http://127.0.0.1/save", { method, headers });
}

async function body(response: Response): Promise<Uint8Array> {
  return new Uint8Array(await response.arrayBuffer());
}

/** A plain-tar image with a big layer whose reads are counted. */
async function countedImage(layerSize: number) {
  const big = new Uint8Array(randomBytes(layerSize));
  const inner = await buildImage({
    layers: [await layerTar({ "etc/a": "a\n" }), wrapTar(big)],
    config: { architecture: "amd64", os: "linux" },
  });
  const stats = { pulled: 0, opens: 0, offsets: [] as number[] };
  const counted = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          stats.pulled += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }),
    );
  const image: Image = {
    rawManifest: () => inner.rawManifest(),
    manifest: () => inner.manifest(),
    rawConfig: () => inner.rawConfig(),
    openLayer: async (layer: Descriptor) => {
      stats.opens++;
      stats.offsets.push(0);
      return counted(await inner.openLayer(layer));
    },
    layerAccess: async (layer: Descriptor) => {
      const access = await inner.layerAccess!(layer);
      return {
        openBlobFrom: async (offset: number) => {
          stats.opens++;
          stats.offsets.push(offset);
          return counted(await access!.openBlobFrom!(offset));
        },
      };
    },
  };
  return { image, stats };
}

// A "tar" of raw bytes: one member named data holding them.
function wrapTar(bytes: Uint8Array): Uint8Array {
  const header = new Uint8Array(512);
  const put = (text: string, at: number) =>
    header.set(new TextEncoder().encode(text), at);
  put("data", 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(bytes.byteLength.toString(8).padStart(11, "0") + "\0", 124);
  put("00000000000\0", 136);
  put("0", 156);
  put("ustar\u000000", 257);
  put("        ", 148);
  const sum = header.reduce((a, b) => a + b, 0);
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  const pad = (512 - bytes.byteLength % 512) % 512;
  return concat([header, bytes, new Uint8Array(pad + 1024)]);
}

test("saveSize() equals the length of the tarball in compressed mode", async () => {
  for (const golden of goldenCases()) {
    const entries = await goldenEntries(golden);
    const full = await readAll(save(entries, { layers: "compressed" }));
    assert.equal(
      await saveSize(entries, { layers: "compressed" }),
      full.byteLength,
    );
  }
});

test("saveSize() is undefined for gzip layers of unknown uncompressed size", async () => {
  assert.equal(await saveSize(await goldenEntries(basic)), undefined);
});

test("saveSize() knows plain tar layers in uncompressed mode, in every format", async () => {
  const { image } = await countedImage(100_000);
  for (const format of ["docker", "oci", "docker+oci"] as const) {
    const entries: [string, Image][] = [["example.com/app:v1", image]];
    const full = await readAll(save(entries, { format }));
    assert.equal(await saveSize(entries, { format }), full.byteLength, format);
  }
});

test("saveResponse() answers 200 with length, ETag and Accept-Ranges", async () => {
  const entries = await goldenEntries(basic);
  const options = { layers: "compressed" } as const;
  const response = await saveResponse(request(), entries, options);
  assert.equal(response.status, 200);
  const bytes = await body(response);
  assert.deepEqual(bytes, await readAll(save(entries, options)));
  assert.equal(
    response.headers.get("content-length"),
    String(bytes.byteLength),
  );
  assert.equal(response.headers.get("accept-ranges"), "bytes");
  assert.match(response.headers.get("etag") ?? "", /^"[0-9a-f]{40}"$/);
  assert.equal(response.headers.get("content-type"), "application/x-tar");
});

test("saveResponse() serves the golden bytes whole in uncompressed mode, without ranges", async () => {
  const response = await saveResponse(
    request({ range: "bytes=0-99" }),
    await goldenEntries(basic),
  );
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("accept-ranges"), null);
  assert.deepEqual(await body(response), basic.expected);
});

test("saveResponse() ranges equal the same slice of the full tarball", async () => {
  const { image } = await countedImage(300_000);
  const cases: [string, Image][][] = [
    await goldenEntries(basic),
    [["example.com/app:v1", image]],
  ];
  for (const entries of cases) {
    for (const format of ["docker", "docker+oci"] as const) {
      const options = { layers: "compressed", format } as const;
      const full = await readAll(save(entries, options));
      const n = full.byteLength;
      const ranges: [string, number, number][] = [
        ["bytes=0-0", 0, 0],
        [`bytes=${n - 1}-`, n - 1, n - 1],
        ["bytes=-1", n - 1, n - 1],
        [`bytes=-${n + 5}`, 0, n - 1],
        ["bytes=500-1100", 500, 1100],
        [`bytes=100-${n + 100}`, 100, n - 1],
      ];
      for (let i = 0; i < 25; i++) {
        const a = Math.floor(Math.random() * n);
        const b = a + Math.floor(Math.random() * (n - a));
        ranges.push([`bytes=${a}-${b}`, a, b]);
      }
      for (const [header, start, end] of ranges) {
        const response = await saveResponse(
          request({ range: header }),
          entries,
          options,
        );
        assert.equal(response.status, 206, header);
        assert.equal(
          response.headers.get("content-range"),
          `bytes ${start}-${end}/${n}`,
        );
        assert.equal(
          response.headers.get("content-length"),
          String(end - start + 1),
        );
        assert.deepEqual(
          await body(response),
          full.subarray(start, end + 1),
          header,
        );
      }
    }
  }
});

test("saveResponse() resumes a download cut halfway into the same file", async () => {
  const entries = await goldenEntries(
    goldenCases().find((c) => c.name === "same-image-two-tags")!,
  );
  const options = { layers: "compressed" } as const;
  const first = await saveResponse(request(), entries, options);
  const etag = first.headers.get("etag")!;
  const total = Number(first.headers.get("content-length"));
  // The client got half, then the connection dropped.
  const reader = first.body!.getReader();
  const got: Uint8Array[] = [];
  let have = 0;
  while (have < total / 2) {
    const { value } = await reader.read();
    got.push(value!);
    have += value!.byteLength;
  }
  await reader.cancel();
  const resumed = await saveResponse(
    request({ range: `bytes=${have}-`, "if-range": etag }),
    entries,
    options,
  );
  assert.equal(resumed.status, 206);
  const file = concat([...got, await body(resumed)]);
  assert.deepEqual(file, await readAll(save(entries, options)));
  assert.equal(
    sha256Hex(file),
    sha256Hex(await readAll(save(entries, options))),
  );
});

test("saveResponse() reads far less than the image for a small range at the end", async () => {
  const { image, stats } = await countedImage(8 << 20);
  const entries: [string, Image][] = [["example.com/app:v1", image]];
  const response = await saveResponse(
    request({ range: "bytes=-2000" }),
    entries,
  );
  assert.equal(response.status, 206);
  await body(response);
  assert.ok(stats.pulled < 64 * 1024, `pulled ${stats.pulled} bytes`);
  // A range inside the big layer opens it at the offset, not from 0.
  const total = Number(response.headers.get("content-range")!.split("/")[1]);
  stats.pulled = 0;
  stats.offsets.length = 0;
  const middle = await saveResponse(
    request({ range: `bytes=${total - (4 << 20)}-${total - (4 << 20) + 999}` }),
    entries,
  );
  assert.equal((await body(middle)).byteLength, 1000);
  assert.ok(stats.offsets.every((offset) => offset > 0), String(stats.offsets));
  assert.ok(stats.pulled < 256 * 1024, `pulled ${stats.pulled} bytes`);
});

test("saveResponse() answers 416, 304, HEAD, a stale If-Range and several ranges", async () => {
  const entries = await goldenEntries(basic);
  const options = { layers: "compressed" } as const;
  const full = await readAll(save(entries, options));
  const n = full.byteLength;

  const beyond = await saveResponse(
    request({ range: `bytes=${n}-` }),
    entries,
    options,
  );
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get("content-range"), `bytes */${n}`);

  const { headers } = await saveResponse(request(), entries, options);
  const etag = headers.get("etag")!;
  const cached = await saveResponse(
    request({ "if-none-match": etag }),
    entries,
    options,
  );
  assert.equal(cached.status, 304);

  const head = await saveResponse(request({}, "HEAD"), entries, options);
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(n));
  assert.equal(head.body, null);

  const stale = await saveResponse(
    request({ range: "bytes=0-9", "if-range": '"0000"' }),
    entries,
    options,
  );
  assert.equal(stale.status, 200);
  assert.deepEqual(await body(stale), full);

  const several = await saveResponse(
    request({ range: "bytes=0-9,20-29" }),
    entries,
    options,
  );
  assert.equal(several.status, 200);
  assert.deepEqual(await body(several), full);
});

test("saveResponse() ETags follow the inputs", async () => {
  const entries = await goldenEntries(basic);
  const etag = async (tag: string, options = {}) =>
    (await saveResponse(request({}, "HEAD"), [[tag, entries[0][1]]], options))
      .headers.get("etag");
  assert.equal(await etag("oracle/basic:v1"), await etag("oracle/basic:v1"));
  assert.notEqual(await etag("oracle/basic:v1"), await etag("oracle/basic:v2"));
  assert.notEqual(
    await etag("oracle/basic:v1"),
    await etag("oracle/basic:v1", { layers: "compressed" }),
  );
  assert.notEqual(
    await etag("oracle/basic:v1"),
    await etag("oracle/basic:v1", { format: "oci" }),
  );
  // A memory copy of the same image has the same ETag: it is the same bytes.
  const [tag, image] = entries[0];
  const manifest = await image.manifest();
  const blobs = new Map<string, Uint8Array>();
  for (const layer of manifest.layers) {
    blobs.set(layer.digest, await readAll(await image.openLayer(layer)));
  }
  const copy = fromMemory({
    manifest: await image.rawManifest(),
    config: await image.rawConfig(),
    blobs,
  });
  const copyTag = (await saveResponse(request({}, "HEAD"), [[tag, copy]]))
    .headers.get("etag");
  assert.equal(copyTag, await etag(tag));
});
