/**
 * No import cycles in `src/` (issue 18): every module's relative imports and
 * re-exports, types included, form a graph without a cycle, so each file
 * can be read after the ones it names. Two cycles were found this way
 * (`save/config_digest.ts` <-> `save/index_digest.ts`, `save/write.ts` <->
 * `save/positional_write.ts`).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const SRC = join(ROOT, "src");

/** Every `.ts` file below `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

// Top-level `import … from "./x.ts"` and `export … from "./x.ts"` (not the
// ones inside JSDoc examples, which start with ` * `).
const IMPORT = /^(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"/gms;

/** Each file's relative imports, resolved. */
function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    graph.set(
      file,
      [...text.matchAll(IMPORT)].map((match) =>
        normalize(join(dirname(file), match[1]))
      ),
    );
  }
  return graph;
}

/** Every cycle a depth-first walk meets, each as a list of files. */
function cycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") {
        found.push(stack.slice(stack.indexOf(next)));
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

test("the import graph of src/ finds a cycle when there is one", () => {
  const graph = new Map([
    ["a.ts", ["b.ts"]],
    ["b.ts", ["c.ts"]],
    ["c.ts", ["a.ts"]],
    ["d.ts", ["a.ts"]],
  ]);
  assert.deepEqual(cycles(graph), [["a.ts", "b.ts", "c.ts"]]);
});

test("src/ has no import cycles, types included", () => {
  const graph = importGraph(sources(SRC));
  assert.ok(graph.size > 50, `${graph.size} files read`);
  const edges = [...graph.values()].reduce((n, to) => n + to.length, 0);
  assert.ok(edges > graph.size, `${edges} imports read`);
  assert.deepEqual(
    cycles(graph).map((cycle) =>
      cycle.map((file) => relative(ROOT, file)).join(" -> ")
    ),
    [],
  );
});

/**
 * The rooms of `src/` stand in layers (docs/ARCHITECTURE.md): a room imports
 * only from the rooms below it. `cli.ts` and `cli/` stand on top.
 */
const ROOM_ORDER = ["util", "model", "runtime", "sources", "save", "cli"];

/** The room of a file below `src/`: its first folder (`cli.ts` is `cli`). */
function roomOf(file: string): string {
  const [first] = relative(SRC, file).split("/");
  return first.replace(/\.ts$/, "");
}

test("src/ rooms import only from the rooms below them", () => {
  const graph = importGraph(sources(SRC));
  const upward: string[] = [];
  for (const [file, imports] of graph) {
    const from = ROOM_ORDER.indexOf(roomOf(file));
    assert.ok(from >= 0, `${relative(ROOT, file)} is in a known room`);
    for (const target of imports) {
      if (ROOM_ORDER.indexOf(roomOf(target)) > from) {
        upward.push(`${relative(ROOT, file)} -> ${relative(ROOT, target)}`);
      }
    }
  }
  assert.deepEqual(upward, []);
});
