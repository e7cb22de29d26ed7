/**
 * The one platform rule (src/model/platform.ts): containerd's normalisation with
 * go-containerregistry's matching, the same for a registry index and an OCI
 * layout's nested index.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MEDIA_TYPES, type Platform } from "../../src/model/image.ts";
import {
  choosePlatform,
  parsePlatform,
  platformMatches,
} from "../../src/model/platform.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { sha256Hex } from "../_kit/digest.ts";

test("parsePlatform() normalises like containerd's platforms.Normalize", () => {
  const cases: [string, Platform][] = [
    ["linux/amd64", { os: "linux", architecture: "amd64", variant: undefined }],
    ["Linux/x86_64", {
      os: "linux",
      architecture: "amd64",
      variant: undefined,
    }],
    ["linux/aarch64", {
      os: "linux",
      architecture: "arm64",
      variant: undefined,
    }],
    ["linux/arm64/8", { os: "linux", architecture: "arm64", variant: "v8" }],
    ["linux/armhf", { os: "linux", architecture: "arm", variant: "v7" }],
    ["linux/armel", { os: "linux", architecture: "arm", variant: "v6" }],
    ["linux/i386", { os: "linux", architecture: "386", variant: undefined }],
    ["macos/arm64", {
      os: "darwin",
      architecture: "arm64",
      variant: undefined,
    }],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(parsePlatform(text), expected, text);
  }
  for (const bad of ["linux", "linux/", "linux/arm64/", "a/b/c/d", ""]) {
    assert.throws(() => parsePlatform(bad), {
      name: "DockerSaveError",
      code: "PLATFORM_NOT_FOUND",
    }, bad);
  }
});

test("platformMatches() constrains the variant only when one is asked for", () => {
  const arm64 = { os: "linux", architecture: "arm64" };
  const arm64v8 = { ...arm64, variant: "v8" };
  const armv6 = { os: "linux", architecture: "arm", variant: "v6" };
  const armv7 = { os: "linux", architecture: "arm", variant: "v7" };
  const table: [Platform, string, boolean][] = [
    [arm64, "linux/arm64", true],
    [arm64, "linux/arm64/v8", true], // no variant means v8
    [arm64v8, "linux/arm64", true],
    [arm64v8, "linux/aarch64/8", true],
    [{ ...arm64, variant: "v9" }, "linux/arm64/v8", false],
    [armv6, "linux/arm", true], // no variant asked: any
    [armv6, "linux/arm/v7", false],
    [{ os: "linux", architecture: "arm" }, "linux/arm/v7", true],
    [armv7, "linux/armhf", true],
    [{ os: "linux", architecture: "x86_64" }, "linux/amd64", true],
    [{ os: "windows", architecture: "amd64" }, "linux/amd64", false],
  ];
  for (const [have, want, expected] of table) {
    assert.equal(
      platformMatches(have, parsePlatform(want)),
      expected,
      `${JSON.stringify(have)} for ${want}`,
    );
  }
});

const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
const entry = (n: number, platform?: Platform) => ({
  mediaType: MEDIA_TYPES.ociManifest,
  digest: digest(n),
  size: 10,
  ...(platform ? { platform } : {}),
});

test("choosePlatform() prefers the default variant, else the first match, and skips attestations and non-objects", () => {
  const manifests = [
    null,
    entry(1, { os: "unknown", architecture: "unknown" }),
    entry(2, { os: "linux", architecture: "arm", variant: "v6" }),
    entry(3, { os: "linux", architecture: "arm", variant: "v7" }),
    entry(4, { os: "linux", architecture: "arm64", variant: "v9" }),
    entry(5, { os: "linux", architecture: "arm64" }),
    entry(6, { os: "linux", architecture: "amd64", variant: "v3" }),
    entry(7, { os: "linux", architecture: "amd64" }),
  ];
  const pick = (wanted: string) =>
    choosePlatform(manifests, wanted, "test").digest;
  assert.equal(pick("linux/arm"), digest(3));
  assert.equal(pick("linux/arm/v6"), digest(2));
  assert.equal(pick("linux/arm64"), digest(5));
  assert.equal(pick("linux/arm64/v9"), digest(4));
  assert.equal(pick("linux/amd64"), digest(7));
  assert.equal(pick("linux/amd64/v3"), digest(6));
  assert.throws(() => pick("unknown/unknown"), {
    name: "DockerSaveError",
    code: "PLATFORM_NOT_FOUND",
    message:
      "Cannot choose platform unknown/unknown from test: it has linux/arm/v6, linux/arm/v7, linux/arm64/v9, linux/arm64, linux/amd64/v3, linux/amd64",
  });
});

test("choosePlatform() bounds and escapes the platforms it lists", () => {
  const many = Array.from(
    { length: 100 },
    (_, i) => entry(1, { os: "linux", architecture: `a${i}\u001b[2J` }),
  );
  assert.throws(() => choosePlatform(many, "linux/amd64", "test"), (error) => {
    assert.equal((error as { code: string }).code, "PLATFORM_NOT_FOUND");
    const message = (error as Error).message;
    assert.ok(!message.includes("\u001b"), "no raw ESC");
    assert.match(message, /linux\/a0\\x1b\[2J/);
    assert.match(message, /… \(100 in all\)$/);
    return true;
  });
});

/**
 * An OCI layout whose only entry is a nested index with `manifests`; the
 * child manifests are never read (the chosen one is reported by the error
 * of reading a missing blob, which names its digest).
 */
async function layoutWithIndex(dir: string, manifests: unknown[]) {
  const index = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, manifests }),
  );
  const hex = sha256Hex(index);
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "blobs", "sha256", hex), index);
  await writeFile(
    join(dir, "oci-layout"),
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: MEDIA_TYPES.ociIndex,
        digest: `sha256:${hex}`,
        size: index.byteLength,
      }],
    }),
  );
}

test("fromOciLayout() and fromRegistry() choose the same entry by the same rule, with the same error code", async () => {
  const manifests = [
    entry(1, { os: "linux", architecture: "amd64" }),
    entry(2, { os: "linux", architecture: "arm64" }), // variant left out
    entry(3, { os: "linux", architecture: "arm", variant: "v7" }),
  ];
  const dir = await mkdtemp(join(tmpdir(), "docker-save-platform-"));
  try {
    await layoutWithIndex(dir, manifests);
    const index = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests,
      }),
    );
    const requested: string[] = [];
    const fetch = ((input: RequestInfo | URL) => {
      const url = String(input);
      requested.push(url);
      return Promise.resolve(
        url.endsWith("/manifests/v1")
          ? new Response(index, {
            headers: { "content-type": MEDIA_TYPES.ociIndex },
          })
          : new Response("{}", { status: 404 }),
      );
    }) as typeof globalThis.fetch;
    const registry = "registry.example.com/app:v1";
    for (
      const [platform, chosen] of [
        ["linux/arm64/v8", 2],
        ["linux/aarch64", 2],
        ["linux/armhf", 3],
        ["linux/x86_64", 1],
      ] as const
    ) {
      // Both fail reading the chosen child, which names its digest.
      await assert.rejects(fromOciLayout(dir, undefined, { platform }), {
        code: "BLOB_NOT_FOUND",
        message: new RegExp(digest(chosen)),
      }, `layout ${platform}`);
      requested.length = 0;
      await assert.rejects(
        fromRegistry(registry, {
          fetch,
          platform,
          dockerConfig: false,
          retry: { attempts: 0 },
        }),
        { code: "MANIFEST_NOT_FOUND" },
      );
      assert.ok(
        requested.at(-1)!.endsWith(`/manifests/${digest(chosen)}`),
        `registry ${platform}: ${requested.at(-1)}`,
      );
    }
    const expected = "it has linux/amd64, linux/arm64, linux/arm/v7";
    await assert.rejects(
      fromOciLayout(dir, undefined, { platform: "linux/s390x" }),
      {
        name: "DockerSaveError",
        code: "PLATFORM_NOT_FOUND",
        message: new RegExp(`${expected}$`),
      },
    );
    await assert.rejects(
      fromRegistry(registry, {
        fetch,
        platform: "linux/s390x",
        dockerConfig: false,
      }),
      {
        name: "DockerSaveError",
        code: "PLATFORM_NOT_FOUND",
        message: new RegExp(`${expected}$`),
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
