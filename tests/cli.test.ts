import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  cp,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import process from "node:process";
import { goldenCases } from "./_golden.ts";

const CLI = new URL("../src/cli.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

// The CLI runs on the runtime running this test.
function runtimeCommand(): string[] {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Deno) return [process.execPath, "run", "-A", CLI];
  if (g.Bun) return [process.execPath, CLI];
  return [process.execPath, "--import", "tsx", CLI];
}

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  const [cmd, ...pre] = runtimeCommand();
  return new Promise((resolve) => {
    execFile(
      cmd,
      [...pre, ...args],
      { cwd: ROOT, encoding: "buffer", maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        resolve({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          stdout,
          stderr: stderr.toString(),
        });
      },
    );
  });
}

const [basic] = goldenCases().filter((c) => c.name === "basic");
const layout = `${basic.dir}/oci`;

test("cli --help documents the SOURCE syntax and exits 0", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout.toString(), /oci:DIR\[:REF\]\[=TAG\]/);
});

test("cli -o FILE writes the golden tarball", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    const out = `${dir}/out.tar`;
    const { code, stderr } = await run([
      "-o",
      out,
      `oci:${layout}:basic=oracle/basic:v1`,
    ]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
    assert.ok(Buffer.from(basic.expected).equals(await readFile(out)));
    assert.deepEqual(await readdir(dir), ["out.tar"]);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("cli writes stdout when stdout is not a terminal", async () => {
  const { code, stdout } = await run([`oci:${layout}=oracle/basic:v1`]);
  assert.equal(code, 0);
  assert.ok(Buffer.from(basic.expected).equals(stdout));
});

test("cli exits 1 with one line and leaves no file when a blob is corrupt", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    await cp(layout, `${dir}/oci`, { recursive: true });
    const manifest = JSON.parse(
      await readFile(
        `${dir}/oci/blobs/sha256/${
          JSON.parse(await readFile(`${dir}/oci/index.json`, "utf8"))
            .manifests[0].digest.slice(7)
        }`,
        "utf8",
      ),
    );
    const top = manifest.layers.at(-1).digest.slice(7);
    const blob = await readFile(`${dir}/oci/blobs/sha256/${top}`);
    blob[blob.length - 9] ^= 0xff; // inside the gzip trailer's CRC
    await writeFile(`${dir}/oci/blobs/sha256/${top}`, blob);
    const out = `${dir}/out.tar`;
    const { code, stderr } = await run(["-o", out, `oci:${dir}/oci=a/b:c`]);
    assert.equal(code, 1);
    assert.match(stderr, /^docker-save: .*sha256:/);
    assert.equal(stderr.trimEnd().split("\n").length, 1);
    assert.deepEqual(await readdir(dir), ["oci"]);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("cli exits 1 on a bad tag and an unknown option", async () => {
  const bad = await run(["-o", "/dev/null", `oci:${layout}=Bad/Tag:v1`]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^docker-save: .*repository "Bad\/Tag"/);
  const unknown = await run(["--frobnicate"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown option "--frobnicate"/);
});
