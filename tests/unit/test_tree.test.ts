/**
 * The test tree's rules: every test file is in tests/unit/ (no external
 * tool, no child process) or tests/integration/, where `npm test` and
 * `npm run test:unit` find it on every runtime (Node's runner is given
 * those two globs); and the helpers in tests/_kit/ define each name once.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

const TESTS = new URL("../", import.meta.url).pathname;

test("every test file is in tests/unit/ or tests/integration/", () => {
  const misplaced = readdirSync(TESTS, { recursive: true })
    .map(String)
    .filter((path) => /(^|\/)[^/]+[._]test\.ts$/.test(path))
    .filter((path) => !/^(unit|integration)\/[^/]+\.test\.ts$/.test(path));
  assert.deepEqual(misplaced, []);
});

test("the helpers in tests/_kit/ define each exported name once", () => {
  const kit = `${TESTS}_kit/`;
  const where = new Map<string, string[]>();
  for (const file of readdirSync(kit).filter((f) => f.endsWith(".ts"))) {
    const source = readFileSync(`${kit}${file}`, "utf8");
    const names = source.matchAll(
      /^export (?:async )?(?:function\*?|const|class|type|interface|let) *\*? *(\w+)/gm,
    );
    for (const [, name] of names) {
      where.set(name, [...where.get(name) ?? [], file]);
    }
  }
  const twice = [...where].filter(([, files]) => files.length > 1);
  assert.deepEqual(twice, []);
});
