/**
 * blobPath() and digestOfBlobPath() name the files of real OCI layouts (the
 * golden ones, written by skopeo), and refuse digests that are not sha256.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import {
  blobPath,
  digestOfBlobPath,
  REF_NAME_ANNOTATION,
} from "../../src/model/oci_layout_names.ts";
import { digestOf } from "../_kit/digest.ts";
import { goldenCases } from "../_kit/golden.ts";

test("blobPath() is where a golden layout keeps each blob, and digestOfBlobPath() reads it back", () => {
  for (const golden of goldenCases()) {
    const root = `${golden.dir}/oci`;
    for (const hex of readdirSync(`${root}/blobs/sha256`)) {
      const bytes = readFileSync(`${root}/blobs/sha256/${hex}`);
      const digest = digestOf(new Uint8Array(bytes));
      const path = blobPath(digest);
      assert.deepEqual(readFileSync(`${root}/${path}`), bytes, path);
      assert.equal(digestOfBlobPath(path), digest);
    }
    const index = JSON.parse(readFileSync(`${root}/index.json`, "utf8"));
    for (const entry of index.manifests) {
      assert.equal(typeof entry.annotations[REF_NAME_ANNOTATION], "string");
    }
  }
});

test("blobPath() refuses digests it cannot verify or that would leave blobs/", () => {
  for (
    const digest of [
      `sha512:${"a".repeat(128)}`,
      "sha256:../../etc/passwd",
      `sha256:${"A".repeat(64)}`,
      "abc",
    ]
  ) {
    assert.throws(() => blobPath(digest, "layer 0"), {
      name: "DockerSaveError",
      code: "BAD_DIGEST",
      message:
        `Cannot use layer 0: digest "${digest}" is not "sha256:" and 64 lowercase hex digits`,
    });
  }
  for (
    const path of [
      "manifest.json",
      `blobs/sha512/${"a".repeat(64)}`,
      `./blobs/sha256/${"a".repeat(64)}`,
      `blobs/sha256/${"a".repeat(63)}`,
    ]
  ) assert.equal(digestOfBlobPath(path), undefined, path);
});
