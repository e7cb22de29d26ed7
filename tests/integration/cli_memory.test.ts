/**
 * The CLI's memory does not grow with the output: a 768 MiB layer written to
 * stdout (a file) and to `-o FILE` stays far below the layer's size in peak
 * RSS, as GNU time measures the process, with no V8 flags. A bound, with a wide margin, not a
 * benchmark: a chunk kept per write (as a Promise.race against a long-lived
 * "aborted" promise did: 340 MiB for 256 MiB) breaks it, noise does not.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import process from "node:process";
import { withTemp } from "../_kit/cleanup.ts";
import { runtimeCommand } from "../_kit/processes.ts";
import { digestOf } from "../_kit/digest.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TIME = "/usr/bin/time";
const LAYER = 768 * 1024 * 1024;
// Where chunks are freed by their last reader (ArrayBuffer.prototype.transfer:
// Deno, Bun), they do not wait for a collection either: plain Deno peaked at
// 162–204 MiB to stdout before (75 MiB after); Node 20 has no transfer.
const BOUND_MIB = typeof (ArrayBuffer.prototype as { transfer?: unknown })
    .transfer === "function"
  ? 140
  : 320;

const ci = Boolean(process.env.CI);
const skip = existsSync(TIME) || ci ? false : "GNU time not installed";

// An OCI layout with one gzip layer of a tar holding LAYER zero bytes.
function zeroLayout(dir: string): string {
  const header = new Uint8Array(512);
  const put = (text: string, at: number) =>
    header.set(new TextEncoder().encode(text), at);
  put("zeros", 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(`${LAYER.toString(8).padStart(11, "0")}\0`, 124);
  put("00000000000\0", 136);
  put("0", 156);
  put("ustar\x0000", 257);
  put("        ", 148);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const tar = new Uint8Array(512 + LAYER + 1024);
  tar.set(header);
  const blob = new Uint8Array(gzipSync(tar, { level: 1 }));
  const layout = `${dir}/oci`;
  mkdirSync(`${layout}/blobs/sha256`, { recursive: true });
  const put_ = (bytes: Uint8Array) => {
    const digest = digestOf(bytes);
    writeFileSync(`${layout}/blobs/sha256/${digest.slice(7)}`, bytes);
    return { digest, size: bytes.byteLength };
  };
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [digestOf(tar)] },
  }));
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      ...put_(config),
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      ...put_(blob),
    }],
  }));
  writeFileSync(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...put_(manifest),
      }],
    }),
  );
  writeFileSync(`${layout}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  return layout;
}

// Peak RSS in MiB of the CLI run with `args`, its stdout sent to `out`.
function peakMiB(args: string[], out: string): number {
  const [cmd, ...pre] = runtimeCommand();
  const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;
  const run = spawnSync("sh", [
    "-c",
    `exec ${TIME} -f '%M' ${[cmd, ...pre, ...args].map(quote).join(" ")} > ${
      quote(out)
    }`,
  ], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, DOCKER_CONFIG: "/nonexistent" },
  });
  assert.equal(run.status, 0, run.stderr);
  const kib = Number(run.stderr.trim().split("\n").at(-1));
  assert.ok(Number.isFinite(kib), run.stderr);
  return kib / 1024;
}

test(
  "cli peak RSS stays bounded for a 768 MiB layer, to stdout and to -o FILE",
  {
    skip,
    timeout: 300_000,
  },
  async () => {
    await withTemp("cli-memory-", (dir) => {
      const layout = zeroLayout(dir);
      const source = `oci:${layout}=zeros/app:v1`;
      const stdout = peakMiB(["-q", source], `${dir}/stdout.tar`);
      const file = peakMiB(
        ["-q", "-o", `${dir}/file.tar`, source],
        "/dev/null",
      );
      assert.equal(
        statSync(`${dir}/stdout.tar`).size,
        statSync(`${dir}/file.tar`).size,
      );
      assert.ok(stdout < BOUND_MIB, `stdout: ${stdout.toFixed(0)} MiB`);
      assert.ok(file < BOUND_MIB, `-o FILE: ${file.toFixed(0)} MiB`);
      return Promise.resolve();
    });
  },
);
