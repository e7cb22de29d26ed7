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
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { unpackTar } from "modern-tar";
import { run, runtimeCommand } from "../_kit/processes.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEMO = join(ROOT, "examples/demo.ts");

test("npm start's demo image runs its Cmd, a file it holds", {
  timeout: 120_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "docker-save-demo-"));
  try {
    const out = join(dir, "demo.tar");
    const [command, ...pre] = runtimeCommand(DEMO);
    const demo = await run(command, [...pre, out], { cwd: ROOT });
    assert.match(demo, /docker load -i /);
    assert.match(demo, /docker run --rm docker-save\/demo/);

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
      assert.equal(await run(path, []), "hello from docker-save\n");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
