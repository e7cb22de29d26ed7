/**
 * `npm start` (examples/demo.ts): the demo image it saves can run. Its `Cmd`
 * names a file of its own layers, executable, that prints a greeting (run
 * here directly where the machine is linux/amd64, the image's platform), and
 * the demo says how to load and run it.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { unpackTar } from "modern-tar";
import { runtimeCommand } from "../_kit/processes.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEMO = join(ROOT, "examples/demo.ts");

function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: ROOT, encoding: "utf8" },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          stdout,
          stderr,
        }),
    );
  });
}

test("npm start's demo image runs its Cmd, a file it holds", {
  timeout: 120_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "docker-save-demo-"));
  try {
    const out = join(dir, "demo.tar");
    const [command, ...pre] = runtimeCommand(DEMO);
    const demo = await run(command, [...pre, out]);
    assert.equal(demo.code, 0, demo.stderr);
    assert.match(demo.stdout, /docker load -i /);
    assert.match(demo.stdout, /docker run --rm docker-save\/demo/);

    const members = new Map(
      (await unpackTar(await readFile(out))).map((m) => [m.header.name, m]),
    );
    const [entry] = JSON.parse(
      new TextDecoder().decode(members.get("manifest.json")!.data),
    );
    const config = JSON.parse(
      new TextDecoder().decode(members.get(entry.Config)!.data),
    );
    const [program] = config.config.Cmd as string[];
    const files = [];
    for (const layer of entry.Layers as string[]) {
      files.push(...await unpackTar(members.get(layer)!.data!));
    }
    const file = files.find((f) => "/" + f.header.name === program);
    assert.ok(file, `Cmd ${program} is not in the image`);
    assert.ok((file.header.mode ?? 0) & 0o111, `${program} is not executable`);
    assert.equal(config.os, "linux");
    assert.equal(config.architecture, "amd64");

    if (process.platform === "linux" && process.arch === "x64") {
      const path = join(dir, "program");
      await writeFile(path, file.data!);
      await chmod(path, 0o755);
      const ran = await run(path, []);
      assert.equal(ran.code, 0);
      assert.equal(ran.stdout, "hello from docker-save\n");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
