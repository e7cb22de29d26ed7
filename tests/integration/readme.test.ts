/**
 * The README and docs/ as a new user meets them: every `ts` code block
 * type-checks as pasted (`deno check --doc-only`, with `docker-save` mapped to
 * mod.ts by deno.json), the README's first example runs as pasted, and the
 * "from a clone" commands of the Install section answer.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cp,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { fromOciLayout, save } from "../../mod.ts";
import { readAll } from "../_kit/bytes.ts";
import { TESTDATA } from "../_kit/golden.ts";
import { TOOL_TIMEOUT } from "../_kit/time.ts";
import { run } from "../_kit/processes.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
// The deno of the clone (a devDependency), whatever runtime runs the test.
const DENO = join(ROOT, "node_modules/.bin/deno");

/** The `ts` code blocks of a Markdown text. */
function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, "docs")))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`);
  return ["README.md", ...docs];
}

test("README and docs: every ts block type-checks as pasted", {
  timeout: TOOL_TIMEOUT,
}, async () => {
  const files = await markdownFiles();
  let blocks = 0;
  for (const file of files) {
    blocks += tsBlocks(await readFile(join(ROOT, file), "utf8")).length;
  }
  assert.ok(blocks >= 5, `only ${blocks} ts blocks found`);
  await run(DENO, ["check", "--doc-only", ...files], { cwd: ROOT });
});

test("README: the first example runs as pasted and writes save()'s bytes", {
  timeout: TOOL_TIMEOUT,
}, async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const [first] = tsBlocks(readme);
  assert.match(first, /saveToFile\("app\.tar"/);
  const dir = await mkdtemp(join(tmpdir(), "docker-save-readme-"));
  try {
    // An OCI layout whose one entry is named "app", as the example expects.
    await cp(join(TESTDATA, "basic/oci"), join(dir, "oci"), {
      recursive: true,
    });
    const indexPath = join(dir, "oci/index.json");
    const index = JSON.parse(await readFile(indexPath, "utf8"));
    index.manifests[0].annotations["org.opencontainers.image.ref.name"] = "app";
    await writeFile(indexPath, JSON.stringify(index));
    await writeFile(join(dir, "example.ts"), first);

    await run(DENO, [
      "run",
      "-A",
      `--config=${join(ROOT, "deno.json")}`,
      "example.ts",
    ], { cwd: dir });

    const image = await fromOciLayout(join(dir, "oci"), "app");
    const expected = await readAll(
      save([["registry.example.com/app:v1", image]]),
    );
    assert.deepEqual(
      new Uint8Array(await readFile(join(dir, "app.tar"))),
      expected,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The commands of the Install section's "From a clone" lines, as pasted. */
function fromCloneCommands(readme: string): string[] {
  const block = readme.match(/^# From a clone[^\n]*\n([\s\S]*?)\n\n/m);
  assert.ok(block, "README: no '# From a clone' lines");
  return block[1].split("\n")
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line && !line.startsWith("git clone"));
}

test("README: from a clone, its Node, Deno and Bun commands run as pasted", {
  timeout: TOOL_TIMEOUT,
}, async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const commands = fromCloneCommands(readme);
  assert.equal(commands.length, 3, commands.join("\n"));
  // A new user's PATH: no node_modules/.bin (npm test would add it), so a
  // bare `deno` or `bun` is only found where the user installed one.
  const path = (process.env.PATH ?? "").split(":")
    .filter((dir) => !dir.includes("node_modules")).join(":");
  const env = { ...process.env, PATH: path, NO_COLOR: "1" };
  for (const command of commands) {
    const stdout = await run("sh", ["-c", command], { cwd: ROOT, env });
    assert.match(stdout, /^Usage: docker-save /m, command);
  }
});
