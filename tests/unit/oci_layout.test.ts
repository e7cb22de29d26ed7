/**
 * fromOciLayout() and fromOciArchive() against hostile layouts: every index
 * and manifest blob is hashed against its digest, nesting is bounded, reads
 * are capped, and every malformed shape is a DockerSaveError with a code —
 * in bounded work (reads are counted; a reader that loops fails the count
 * instead of hanging the test). Each case runs on a layout directory and on
 * the same files as an `oci-archive:` tarball.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  fromOciArchive,
  fromOciLayout,
  type Image,
  indexOciArchive,
  save,
} from "../../mod.ts";
import { nodeFileSystem } from "../../src/runtime/fs.ts";
import { readAll, sameBytes } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import { MEDIA } from "../_kit/format.ts";
import { goldenCases } from "../_kit/golden.ts";
import {
  addBlob,
  countArchiveReads,
  countingFs,
  type LayoutFiles,
  layoutFiles,
  layoutTar,
  type ReadCount,
  type TestDescriptor,
  writeLayout,
} from "../_kit/layout.ts";

const encoder = new TextEncoder();
const MiB = 1024 * 1024;
const AMD64 = { os: "linux", architecture: "amd64" };

const basic = goldenCases().find((golden) => golden.name === "basic")!;

/** Golden basic's layout files, and its manifest's descriptor and value. */
function basicLayout() {
  const files: LayoutFiles = new Map(layoutFiles(`${basic.dir}/oci`));
  const index = JSON.parse(
    readFileSync(`${basic.dir}/oci/index.json`, "utf8"),
  );
  const entry: TestDescriptor = index.manifests[0];
  const manifestPath = `blobs/sha256/${entry.digest.slice(7)}`;
  const manifest = JSON.parse(
    new TextDecoder().decode(files.get(manifestPath)),
  );
  return { files, entry, manifestPath, manifest };
}

/** index.json naming these entries. */
function setIndex(files: LayoutFiles, manifests: unknown[]): void {
  files.set(
    "index.json",
    encoder.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests,
    })),
  );
}

/**
 * The same bytes with the character after `after` changed (to `a`, or `b`
 * if it was `a`): after a digest's `sha256:` the JSON stays valid, only the
 * hash can tell.
 */
function sameSizeOtherBytes(bytes: Uint8Array, after: string): Uint8Array {
  const text = new TextDecoder().decode(bytes);
  const i = text.indexOf(after) + after.length;
  assert.ok(i >= after.length, `"${after}" in ${text}`);
  const changed = bytes.slice();
  changed[i] = changed[i] === 0x61 ? 0x62 : 0x61;
  return changed;
}

interface Opened {
  image: Promise<Image>;
  count: ReadCount;
  label: string;
}

/**
 * Runs `check` on the files as a layout directory and as an OCI archive,
 * each read through a read counter.
 */
async function onBothForms(
  files: LayoutFiles,
  ref: string | undefined,
  check: (opened: Opened) => Promise<void>,
): Promise<void> {
  await withTemp("docker-save-oci-layout-", async (dir) => {
    const layout = join(dir, "layout");
    writeLayout(layout, files);
    const { fs, count } = countingFs((await nodeFileSystem())!);
    const named = ref === undefined ? "" : ` ref "${ref}"`;
    await check({
      image: fromOciLayout(layout, ref, { fs }),
      count,
      label: `OCI layout "${layout}"${named}`,
    });

    const archive = join(dir, "layout.tar");
    writeFileSync(archive, await layoutTar(files));
    const index = await indexOciArchive(archive);
    const archiveCount = countArchiveReads(index);
    await check({
      image: fromOciArchive(archive, ref, { index }),
      count: archiveCount,
      label: `OCI archive "${archive}"${named}`,
    });
  });
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** A message that mentions every part, in any order. */
function mentions(...parts: string[]): RegExp {
  return new RegExp(parts.map((part) => `(?=[^]*${escape(part)})`).join(""));
}

/** A nested index (as JSON text) listing `entries`. */
function indexOf(entries: unknown[]) {
  return { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: entries };
}

// --- hashing ----------------------------------------------------------------

test("fromOciLayout() rejects a self-referencing index with DIGEST_MISMATCH, in a few reads", async () => {
  const { files } = basicLayout();
  // An index blob that lists itself: only possible when its bytes are not
  // checked against its digest. Its size is made to match its descriptor.
  const digest = `sha256:${"ab".repeat(32)}`;
  let size = 0;
  let bytes = new Uint8Array(0);
  for (let i = 0; i < 5; i++) {
    bytes = encoder.encode(JSON.stringify(indexOf([{
      mediaType: MEDIA.ociIndex,
      digest,
      size,
      platform: AMD64,
    }])));
    size = bytes.byteLength;
  }
  assert.equal(
    JSON.parse(new TextDecoder().decode(bytes)).manifests[0].size,
    size,
  );
  files.set(`blobs/sha256/${digest.slice(7)}`, bytes);
  setIndex(files, [{ mediaType: MEDIA.ociIndex, digest, size }]);
  await onBothForms(files, undefined, async ({ image, count, label }) => {
    await assert.rejects(image, {
      name: "DockerSaveError",
      code: "DIGEST_MISMATCH",
      message: mentions(label, digest),
    });
    assert.ok(count.reads <= 4, `${count.reads} reads`);
  });
});

for (
  const [what, target] of [
    ["manifest", "manifest"],
    ["nested index", "index"],
    ["config", "config"],
  ] as const
) {
  test(`fromOciLayout() rejects a ${what} with other bytes of the same size with DIGEST_MISMATCH`, async () => {
    const { files, entry, manifestPath, manifest } = basicLayout();
    let changed: string;
    if (target === "config") {
      const path = `blobs/sha256/${manifest.config.digest.slice(7)}`;
      files.set(path, sameSizeOtherBytes(files.get(path)!, "sha256:"));
      changed = manifest.config.digest;
    } else if (target === "manifest") {
      files.set(
        manifestPath,
        sameSizeOtherBytes(files.get(manifestPath)!, "sha256:"),
      );
      changed = entry.digest;
    } else {
      const nested = addBlob(
        files,
        MEDIA.ociIndex,
        indexOf([{ ...entry, annotations: undefined, platform: AMD64 }]),
      );
      const path = `blobs/sha256/${nested.digest.slice(7)}`;
      files.set(path, sameSizeOtherBytes(files.get(path)!, "sha256:"));
      setIndex(files, [nested]);
      changed = nested.digest;
    }
    await onBothForms(files, undefined, async ({ image, label }) => {
      await assert.rejects(image, {
        name: "DockerSaveError",
        code: "DIGEST_MISMATCH",
        message: mentions(label, changed),
      });
    });
  });
}

// --- nesting ------------------------------------------------------------------

/** index.json -> `depth` nested indexes -> golden basic's manifest. */
function nestedLayout(depth: number): LayoutFiles {
  const { files, entry } = basicLayout();
  let top: TestDescriptor = { ...entry, annotations: undefined };
  for (let i = 0; i < depth; i++) {
    top = addBlob(
      files,
      MEDIA.ociIndex,
      indexOf([{ ...top, platform: AMD64 }]),
    );
  }
  setIndex(files, [top]);
  return files;
}

test("fromOciLayout() follows 4 nested indexes and refuses a 5th with BAD_MANIFEST", async () => {
  await onBothForms(nestedLayout(4), undefined, async ({ image }) => {
    sameBytes(
      await readAll(save([["oracle/basic:v1", await image]])),
      basic.expected,
      "4 nested indexes",
    );
  });
  await onBothForms(nestedLayout(5), undefined, async ({ image, label }) => {
    await assert.rejects(image, {
      name: "DockerSaveError",
      code: "BAD_MANIFEST",
      message: `Cannot read ${label}: indexes nest deeper than 4`,
    });
  });
});

// --- shapes -----------------------------------------------------------------

test("fromOciLayout() reports malformed indexes as DockerSaveErrors with a code", async () => {
  const cases: [string, (files: LayoutFiles) => void, string, RegExp][] = [
    [
      "index.json lists null",
      (files) => setIndex(files, [null]),
      "BAD_LAYOUT",
      /^Cannot read index\.json of .*: manifests\[0\] is not a descriptor$/,
    ],
    [
      "index.json lists a string",
      (files) => setIndex(files, ["x"]),
      "BAD_LAYOUT",
      /^Cannot read index\.json of .*: manifests\[0\] is not a descriptor$/,
    ],
    [
      "index.json's entry has no digest",
      (files) => setIndex(files, [{ mediaType: MEDIA.ociIndex, size: 2 }]),
      "BAD_LAYOUT",
      /^Cannot read index\.json of .*: manifests\[0\] has no digest$/,
    ],
    [
      "a nested index lists null",
      (files) =>
        setIndex(files, [addBlob(files, MEDIA.ociIndex, indexOf([null]))]),
      "BAD_MANIFEST",
      /^Cannot read index sha256:[0-9a-f]{64} of .*: manifests\[0\] is not a descriptor$/,
    ],
    [
      "a nested index is not JSON",
      (files) =>
        setIndex(files, [
          addBlob(files, MEDIA.ociIndex, encoder.encode("{ not json")),
        ]),
      "BAD_MANIFEST",
      /^Cannot read index sha256:[0-9a-f]{64} of .*: it is not JSON/,
    ],
    [
      "a nested index is a list",
      (files) => setIndex(files, [addBlob(files, MEDIA.ociIndex, [1])]),
      "BAD_MANIFEST",
      /^Cannot read index sha256:[0-9a-f]{64} of .*: it is not a JSON object$/,
    ],
  ];
  for (const [why, change, code, message] of cases) {
    const { files } = basicLayout();
    change(files);
    await onBothForms(files, undefined, async ({ image }) => {
      await assert.rejects(
        image,
        { name: "DockerSaveError", code, message },
        why,
      );
    });
  }
});

// --- caps -------------------------------------------------------------------

test("fromOciLayout() refuses an index.json over 4 MiB after reading at most that much", async () => {
  const { files, entry } = basicLayout();
  // Valid JSON, padded: only its size is wrong.
  const text = JSON.stringify(indexOf([entry]));
  files.set("index.json", encoder.encode(text + " ".repeat(5 * MiB)));
  await onBothForms(files, "basic", async ({ image, count, label }) => {
    await assert.rejects(image, {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message:
        `Cannot read index.json of ${label}: it has more than 4194304 bytes`,
    });
    // The cap, plus the read that crosses it and one read ahead (256 KiB
    // each).
    assert.ok(count.bytes <= 4 * MiB + 512 * 1024, `${count.bytes} bytes read`);
  });
});

test("fromOciLayout() refuses a manifest descriptor over 4 MiB before reading it, and a blob longer than its descriptor", async () => {
  const { files, entry, manifestPath } = basicLayout();
  setIndex(files, [{ ...entry, size: 5 * MiB }]);
  await onBothForms(files, "basic", async ({ image, count, label }) => {
    await assert.rejects(image, {
      name: "DockerSaveError",
      code: "BAD_MANIFEST",
      message:
        `Cannot read manifest ${entry.digest} of ${label}: its descriptor says 5242880 bytes, more than the 4194304 allowed`,
    });
    // index.json and oci-layout only.
    assert.ok(count.bytes < 4096, `${count.bytes} bytes read`);
  });

  // The descriptor is right but the file is 5 MiB longer.
  const long = basicLayout();
  const bytes = long.files.get(manifestPath)!;
  const padded = new Uint8Array(bytes.byteLength + 5 * MiB).fill(0x20);
  padded.set(bytes);
  long.files.set(manifestPath, padded);
  await onBothForms(long.files, "basic", async ({ image, count, label }) => {
    await assert.rejects(image, {
      name: "DockerSaveError",
      code: "SIZE_MISMATCH",
      message:
        `Cannot read manifest ${entry.digest} of ${label}: it has more than ${entry.size} bytes`,
    });
    // What the descriptor allows, plus a read and one read ahead.
    assert.ok(count.bytes <= 512 * 1024, `${count.bytes} bytes read`);
  });
});
