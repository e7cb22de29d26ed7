/**
 * docs/ARCHITECTURE.md and the tree agree: every file under `src/` is named
 * there (by its `src/…` path), and every source file it names, by that path
 * or relative to `src/` (`save/layers.ts`), exists.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/ARCHITECTURE.md"), "utf8");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
      ? [relative(ROOT, join(dir, entry.name)).replaceAll("\\", "/")]
      : []
  );
}

test("docs/ARCHITECTURE.md names every file under src/", () => {
  const named = new Set(DOC.match(/src\/[\w/]+\.ts/g));
  const missing = sourceFiles(join(ROOT, "src")).filter((f) => !named.has(f));
  assert.deepEqual(missing, [], "add them to docs/ARCHITECTURE.md");
});

test("docs/ARCHITECTURE.md names no file that does not exist", () => {
  const full = DOC.match(/src\/[\w/]+\.ts/g) ?? [];
  const short =
    (DOC.match(/`(?:model|sources|save|runtime|util|cli)\/[\w/]+\.ts`/g) ?? [])
      .map((path) => `src/${path.slice(1, -1)}`);
  const gone = [...full, ...short].filter((path) =>
    !existsSync(join(ROOT, path))
  );
  assert.deepEqual(gone, []);
});
