/**
 * `selectPlatforms()` takes what `fromRegistryIndex()` and the other `*Index`
 * sources return: an image index, or the image itself when the entry has one
 * platform (the README's multi-platform snippet passes either).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DockerSaveError,
  type Image,
  type ImageIndex,
  save,
  selectPlatforms,
} from "../../mod.ts";
import { readAll } from "../_kit/bytes.ts";
import { platformImage } from "../_kit/multi_platform.ts";

const TAG = "example.com/one/app:v1";

async function bytesOf(image: Image | ImageIndex): Promise<Uint8Array> {
  return await readAll(save([[TAG, image]], { format: "docker+oci" }));
}

test("selectPlatforms() of a one-platform image keeps the image for all and available", async () => {
  const image = await platformImage("amd64");
  const expected = await bytesOf(image);
  for (const selection of ["all", "available"] as const) {
    const selected = await selectPlatforms(image, selection);
    assert.equal(selected, image, selection);
    assert.deepEqual(await bytesOf(selected), expected);
  }
});

test("selectPlatforms() of a one-platform image keeps it for a list naming its platform", async () => {
  const image = await platformImage("arm64", "v8");
  assert.equal(await selectPlatforms(image, ["linux/arm64"]), image);
  assert.equal(await selectPlatforms(image, ["linux/aarch64/v8"]), image);
});

test("selectPlatforms() of a one-platform image names the platforms it lacks", async () => {
  const image = await platformImage("amd64");
  await assert.rejects(
    selectPlatforms(image, ["linux/amd64", "linux/arm64"]),
    (error: unknown) =>
      error instanceof DockerSaveError &&
      error.code === "PLATFORM_NOT_FOUND" &&
      /linux\/arm64/.test(error.message) &&
      /linux\/amd64/.test(error.message),
  );
});
