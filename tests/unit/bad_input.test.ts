/**
 * Bad input errors the output stream of `save()` with a `DockerSaveError`; it
 * never ends cleanly. Fixtures come from the golden "basic" blobs or are built
 * here with node:crypto and node:zlib.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import type { Image, Manifest } from "../../src/model/image.ts";
import { save } from "../../src/save/save.ts";
import { fromMemory } from "../../src/sources/memory.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { collect, concat } from "../_kit/bytes.ts";
import { tempCopy } from "../_kit/cleanup.ts";
import { digestOf, hexPart } from "../_kit/digest.ts";
import { MEDIA } from "../_kit/format.ts";
import {
  BASIC_DIR,
  basicParts,
  configDescriptor,
  type ImageParts,
  makeParts,
} from "../_kit/images.ts";
import { endsWithTarEnd, layerTar } from "../_kit/tar.ts";

const encoder = new TextEncoder();

interface ExpectedError {
  code: string;
  message: RegExp;
}

function imageOf(parts: ImageParts): Image {
  return fromMemory({
    manifest: parts.manifest as Manifest,
    config: parts.config,
    blobs: parts.blobs,
  });
}

/**
 * Reads the stream to its end, asserts that this rejects with the expected
 * `DockerSaveError`, and returns the bytes received before the error.
 */
async function failingOutput(
  stream: ReadableStream<Uint8Array>,
  expected: ExpectedError,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await assert.rejects(collect(stream, chunks), {
    name: "DockerSaveError",
    ...expected,
  });
  return concat(chunks);
}

/**
 * The stream errors as expected and wrote nothing before (the input is checked
 * before the first byte).
 */
async function assertFailsBeforeOutput(
  stream: ReadableStream<Uint8Array>,
  expected: ExpectedError,
): Promise<void> {
  const received = await failingOutput(stream, expected);
  assert.equal(received.byteLength, 0, "bytes were written before the error");
}

/** The bytes received before the error do not end like a complete tarball. */
function assertNoTarEnd(received: Uint8Array): void {
  assert.ok(
    !endsWithTarEnd(received),
    "the bytes before the error end with two zero blocks, like a complete tarball",
  );
}

/** The stream errors as expected, and not after a complete-looking tarball. */
async function assertFailsInLayer(
  stream: ReadableStream<Uint8Array>,
  expected: ExpectedError,
): Promise<void> {
  assertNoTarEnd(await failingOutput(stream, expected));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

// --- tags -------------------------------------------------------------------

const BAD_TAGS: { why: string; tag: string; rule: RegExp }[] = [
  {
    why: "the repository has uppercase letters",
    tag: "Oracle/basic:v1",
    rule: /repository "Oracle\/basic" may only contain a-z0-9_-\.\//,
  },
  {
    why: "a registry with a port is given without a tag",
    tag: "localhost:5000/a/b",
    rule: /tag "5000\/a\/b" may only contain A-Za-z0-9_\.-/,
  },
  {
    why: "the tag is longer than 127 characters",
    tag: `oracle/basic:${"v".repeat(128)}`,
    rule: /must be at most 127 characters/,
  },
  {
    why: "the tag has a character outside A-Za-z0-9_.-",
    tag: "oracle/basic:v1+build",
    rule: /tag "v1\+build" may only contain A-Za-z0-9_\.-/,
  },
  {
    why: "the repository is shorter than 2 characters",
    tag: "a:v1",
    rule: /repository "a" must be at least 2 characters/,
  },
];

for (const { why, tag, rule } of BAD_TAGS) {
  test(`save() errors with BAD_TAG when ${why}`, async () => {
    await assertFailsBeforeOutput(save([[tag, imageOf(basicParts())]]), {
      code: "BAD_TAG",
      message: rule,
    });
  });
}

test("save() errors with BAD_TAG when the same tag is given twice", async () => {
  const image = imageOf(basicParts());
  await assertFailsBeforeOutput(
    save([["oracle/basic:v1", image], ["oracle/basic:v1", image]]),
    { code: "BAD_TAG", message: /"oracle\/basic:v1" is given twice/ },
  );
});

test("save() errors with BAD_TAG when a tag and its untagged form both mean repo:latest", async () => {
  const image = imageOf(basicParts());
  await assertFailsBeforeOutput(
    save([["oracle/basic", image], ["oracle/basic:latest", image]]),
    { code: "BAD_TAG", message: /"oracle\/basic:latest" is given twice/ },
  );
});

test("save() errors with EMPTY_INPUT when no images are given", async () => {
  await assertFailsBeforeOutput(save([]), {
    code: "EMPTY_INPUT",
    message: /no images/,
  });
});

// --- manifest and config ------------------------------------------------------

test("save() errors with BAD_MANIFEST when the manifest is not JSON", async () => {
  const parts = basicParts();
  const image = fromMemory({
    manifest: encoder.encode('{"schemaVersion": 2, "layers": ['),
    config: parts.config,
    blobs: parts.blobs,
  });
  await assertFailsBeforeOutput(save([["oracle/basic:v1", image]]), {
    code: "BAD_MANIFEST",
    message: /manifest/,
  });
});

test("save() errors with BAD_MANIFEST when the manifest is an index", async () => {
  const parts = basicParts();
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [{
      mediaType: MEDIA.dockerManifest,
      size: 937,
      digest:
        "sha256:2fe70fd5e6448ee47e23a7f2203089548b0128af516dc3d1094c56ecf2952de6",
      platform: { os: "linux", architecture: "amd64" },
    }],
  };
  const image = fromMemory({
    manifest: encoder.encode(JSON.stringify(index)),
    config: parts.config,
    blobs: parts.blobs,
  });
  await assertFailsBeforeOutput(save([["oracle/basic:v1", image]]), {
    code: "BAD_MANIFEST",
    message: /index/,
  });
});

test("save() errors with BAD_CONFIG when the config is not JSON", async () => {
  const parts = basicParts();
  const config = encoder.encode('{"architecture": "amd64", "rootfs": {');
  parts.manifest.config = configDescriptor(config);
  parts.config = config;
  await assertFailsBeforeOutput(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "BAD_CONFIG",
    message: /config/,
  });
});

test("save() errors with DIGEST_MISMATCH when the config bytes differ from the manifest's config digest", async () => {
  const parts = basicParts();
  const expected = parts.manifest.config.digest;
  // Same length, different bytes: only the digest can tell.
  const text = new TextDecoder().decode(parts.config);
  assert.ok(text.includes('"amd64"'));
  parts.config = encoder.encode(text.replace('"amd64"', '"arm64"'));
  await assertFailsBeforeOutput(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "DIGEST_MISMATCH",
    message: new RegExp(`config.*${escape(expected)}`),
  });
});

test("save() errors with LAYER_COUNT_MISMATCH when the layers do not match rootfs.diff_ids", async () => {
  const parts = basicParts();
  parts.manifest.layers = parts.manifest.layers.slice(0, 2);
  await assertFailsBeforeOutput(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "LAYER_COUNT_MISMATCH",
    message: /diff_ids/,
  });
});

test("save() errors with LAYER_COUNT_MISMATCH when history has more non-empty entries than layers", async () => {
  const parts = makeParts({
    layers: [await layerTar({ "a.txt": "a" })],
    config: {
      architecture: "amd64",
      os: "linux",
      history: [
        { created_by: "ADD a.txt" },
        { created_by: "ENV X=1", empty_layer: true },
        { created_by: "ADD b.txt" },
      ],
    },
  });
  await assertFailsBeforeOutput(save([["oracle/history:v1", imageOf(parts)]]), {
    code: "LAYER_COUNT_MISMATCH",
    message: /history/,
  });
});

test("save() errors with UNSUPPORTED_MEDIA_TYPE when a layer's media type is unknown", async () => {
  const parts = basicParts();
  parts.manifest.layers[1].mediaType =
    "application/vnd.example.layer.v1.tar+lz4";
  await assertFailsBeforeOutput(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "UNSUPPORTED_MEDIA_TYPE",
    message: /application\/vnd\.example\.layer\.v1\.tar\+lz4/,
  });
});

// --- layer bodies ----------------------------------------------------------

test("save() errors with BLOB_NOT_FOUND when an in-memory image lacks a layer blob", async () => {
  const parts = basicParts();
  const missing = parts.manifest.layers[1].digest;
  parts.blobs.delete(missing);
  await assertFailsInLayer(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "BLOB_NOT_FOUND",
    message: new RegExp(escape(missing)),
  });
});

test("save() errors with BLOB_NOT_FOUND when an OCI layout lacks a layer blob file", async () => {
  const copy = tempCopy(`${BASIC_DIR}oci`);
  try {
    const missing = basicParts().manifest.layers[1].digest;
    rmSync(`${copy.path}/blobs/sha256/${hexPart(missing)}`);
    const image = await fromOciLayout(copy.path, "basic");
    await assertFailsInLayer(save([["oracle/basic:v1", image]]), {
      code: "BLOB_NOT_FOUND",
      message: new RegExp(escape(missing)),
    });
  } finally {
    copy.dispose();
  }
});

test("save() errors with DIGEST_MISMATCH when a gzip layer blob's sha256 differs from its digest", async () => {
  const parts = basicParts();
  const { digest } = parts.manifest.layers[1];
  // The gzip header's OS byte: the content still gunzips to the right diff_id,
  // the size is the same, only the blob's sha256 changes.
  const blob = parts.blobs.get(digest)!.slice();
  blob[9] = blob[9] === 255 ? 3 : 255;
  parts.blobs.set(digest, blob);
  await assertFailsInLayer(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "DIGEST_MISMATCH",
    message: new RegExp(escape(digest)),
  });
});

// A plain tar layer is not read ahead (its size is in the descriptor), so it
// is verified while its body streams: it fails at its last byte, which
// must not have been emitted.
async function plainTarWithBadBlob(): Promise<[Image, string]> {
  const tar = await layerTar({ "etc/motd": "hello\n" });
  const parts = makeParts({ layers: [tar] });
  const { digest } = parts.manifest.layers[0];
  const blob = tar.slice();
  blob[512] ^= 0x20; // the first byte of etc/motd's content
  parts.blobs.set(digest, blob);
  return [imageOf(parts), digest];
}

test("save() errors with DIGEST_MISMATCH when a plain tar layer blob's sha256 differs from its digest", async () => {
  const [image, digest] = await plainTarWithBadBlob();
  await assertFailsInLayer(save([["oracle/plain:v1", image]]), {
    code: "DIGEST_MISMATCH",
    message: new RegExp(escape(digest)),
  });
});

test("save() errors with SIZE_MISMATCH when a layer blob is longer than its descriptor says", async () => {
  const parts = basicParts();
  const layer = parts.manifest.layers[1];
  layer.size -= 1;
  await assertFailsInLayer(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "SIZE_MISMATCH",
    message: new RegExp(`${escape(layer.digest)}.*expected ${layer.size}`),
  });
});

test("save() errors with SIZE_MISMATCH when a layer blob is shorter than its descriptor says", async () => {
  const parts = basicParts();
  const layer = parts.manifest.layers[1];
  layer.size += 1;
  await assertFailsInLayer(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "SIZE_MISMATCH",
    message: new RegExp(`${escape(layer.digest)}.*expected ${layer.size}`),
  });
});

test("save() errors with BAD_LAYER when a gzip layer blob is not gzip", async () => {
  const tar = await layerTar({ "etc/motd": "hello\n" });
  const parts = makeParts({ layers: [tar] });
  const layer = parts.manifest.layers[0];
  layer.mediaType = MEDIA.dockerLayerGzip; // but the blob is a plain tar
  await assertFailsInLayer(save([["oracle/notgzip:v1", imageOf(parts)]]), {
    code: "BAD_LAYER",
    message: new RegExp(escape(layer.digest)),
  });
});

test("save() errors with DIFF_ID_MISMATCH when a gzip layer's content differs from its diff_id", async () => {
  const parts = basicParts();
  const text = new TextDecoder().decode(parts.config);
  const config = JSON.parse(text);
  const right: string = config.rootfs.diff_ids[1];
  const wrong = digestOf("not the layer's content");
  // Blob digest and size stay right; only the config's diff_id is wrong.
  parts.config = encoder.encode(text.replace(right, wrong));
  parts.manifest.config = configDescriptor(parts.config);
  await assertFailsInLayer(save([["oracle/basic:v1", imageOf(parts)]]), {
    code: "DIFF_ID_MISMATCH",
    message: new RegExp(escape(wrong)),
  });
});

async function plainTarWithWrongDiffId(): Promise<[Image, string]> {
  const base = await layerTar({ "etc/os-release": "ID=test\n" });
  const top = await layerTar({ "app/data.json": "{}\n" });
  const wrong = digestOf("not the layer's content");
  const parts = makeParts({
    layers: [base, top],
    diffIds: [digestOf(base), wrong],
  });
  return [imageOf(parts), wrong];
}

test("save() errors with DIFF_ID_MISMATCH when a plain tar layer's content differs from its diff_id", async () => {
  const [image, wrong] = await plainTarWithWrongDiffId();
  await assertFailsInLayer(save([["oracle/plain:v1", image]]), {
    code: "DIFF_ID_MISMATCH",
    message: new RegExp(escape(wrong)),
  });
});

// A source may end a blob with an empty chunk; holding back only the last
// chunk would then let the whole unverified body through.
function withEmptyLastChunk(image: Image): Image {
  return {
    ...image,
    openLayer: async (layer) => {
      const blob = await image.openLayer(layer);
      const reader = blob.getReader();
      let ended = false;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (ended) return controller.close();
          const { done, value } = await reader.read();
          if (!done) return controller.enqueue(value);
          ended = true;
          controller.enqueue(new Uint8Array(0));
        },
      }, { highWaterMark: 0 });
    },
  };
}

test(
  "save() does not emit a whole unverified plain tar layer whose blob stream ends with an empty chunk",
  async () => {
    const [image, wrong] = await plainTarWithWrongDiffId();
    await assertFailsInLayer(
      save([["oracle/plain:v1", withEmptyLastChunk(image)]]),
      { code: "DIFF_ID_MISMATCH", message: new RegExp(escape(wrong)) },
    );
  },
);

// --- several images -----------------------------------------------------------

test("save() errors before the first byte when only the second image is bad", async () => {
  const bad = basicParts();
  bad.manifest.layers[0].mediaType = "application/vnd.example.layer.v1.tar+lz4";
  await assertFailsBeforeOutput(
    save([["oracle/good:v1", imageOf(basicParts())], [
      "oracle/bad:v1",
      imageOf(bad),
    ]]),
    { code: "UNSUPPORTED_MEDIA_TYPE", message: /"oracle\/bad:v1"/ },
  );
});

test("save() errors with BLOB_NOT_FOUND after the first image's layers when the second lacks a blob", async () => {
  const second = makeParts({
    layers: [await layerTar({ "b.txt": "b\n" })],
    gzip: true,
  });
  const missing = second.manifest.layers[0].digest;
  second.blobs.delete(missing);
  await assertFailsInLayer(
    save([["oracle/good:v1", imageOf(basicParts())], [
      "oracle/bad:v1",
      imageOf(second),
    ]]),
    { code: "BLOB_NOT_FOUND", message: new RegExp(escape(missing)) },
  );
});
