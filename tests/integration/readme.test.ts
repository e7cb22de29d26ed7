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

test("README: from a clone, `deno task cli`, `npx tsx` and `bun` run the CLI", {
  timeout: TOOL_TIMEOUT,
}, async () => {
  const task = await run(DENO, ["task", "cli", "--help"], { cwd: ROOT });
  assert.match(task, /^Usage: docker-save /m);
  for (const runtime of ["tsx", "bun"]) {
    const cli = await run(
      join(ROOT, "node_modules/.bin", runtime),
      ["src/cli.ts", "--help"],
      { cwd: ROOT },
    );
    assert.match(cli, /^Usage: docker-save /m, runtime);
  }
});
