/**
 * The packages users install, as they install them:
 *
 * - runtime-neutral core: a static scan of the module graph of `mod.ts`
 *   (following relative imports) finds no top-level import of a Node built-in
 *   (`node:` modules are only loaded lazily, by dynamic import);
 * - npm: `npm pack` (which builds `dist/` in `prepack`) → `npm install` of the
 *   tarball into an empty project → plain Node (no tsx) imports `docker-save`
 *   and saves the golden case `basic` byte for byte, the `docker-save` bin
 *   prints its usage and saves the same case, the packed files are only what
 *   users need, its `.d.ts` type-check a TypeScript consumer, and the built
 *   `dist/mod.js` graph has no top-level `node:` import either.
 *
 * The npm test drives `npm` and the `node` on PATH whatever runtime runs this
 * file (under Node, the same `node`), so it runs the same way on all three.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { builtinModules } from "node:module";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { TOOL_TIMEOUT } from "../_kit/time.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BASIC = join(ROOT, "tests", "testdata", "basic");

const runtime = (globalThis as { Deno?: unknown }).Deno
  ? "deno"
  : (globalThis as { Bun?: unknown }).Bun
  ? "bun"
  : "node";

// ---------------------------------------------------------------------------
// Static scan of a module graph

const NODE_BUILTINS = new Set(builtinModules);

/** Whether a specifier names a Node built-in module (`node:x`, or bare `fs`). */
function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith("node:") ||
    NODE_BUILTINS.has(specifier.split("/")[0]) ||
    NODE_BUILTINS.has(specifier);
}

/**
 * The module specifiers a file loads when it is evaluated: its top-level
 * `import … from`, `import "…"`, `export … from` (type-only ones are erased
 * and skipped; an import whose names are all `type` still loads its module
 * under `verbatimModuleSyntax`, so it counts). Dynamic `import()` is not
 * included.
 */
function staticImports(path: string, text: string): string[] {
  const kind = path.endsWith(".ts") ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const source = ts.createSourceFile(
    path,
    text,
    ts.ScriptTarget.Latest,
    false,
    kind,
  );
  const specifiers: string[] = [];
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      if (statement.importClause?.isTypeOnly) continue;
      specifiers.push((statement.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(statement)) {
      if (statement.isTypeOnly || !statement.moduleSpecifier) continue;
      specifiers.push((statement.moduleSpecifier as ts.StringLiteral).text);
    } else if (
      ts.isImportEqualsDeclaration(statement) && !statement.isTypeOnly &&
      ts.isExternalModuleReference(statement.moduleReference)
    ) {
      const expression = statement.moduleReference.expression;
      if (ts.isStringLiteral(expression)) specifiers.push(expression.text);
    }
  }
  return specifiers;
}

interface Graph {
  /** Every module reached, as absolute paths. */
  modules: string[];
  /** `module → specifier` for each static import of a Node built-in. */
  nodeImports: string[];
}

/** Walks the static imports from `entry`, following relative specifiers. */
async function scanGraph(entry: string): Promise<Graph> {
  const seen = new Set<string>();
  const nodeImports: string[] = [];
  const queue = [resolve(entry)];
  while (queue.length) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const text = await readFile(path, "utf8");
    for (const specifier of staticImports(path, text)) {
      if (specifier.startsWith("./") || specifier.startsWith("../")) {
        queue.push(resolve(dirname(path), specifier));
      } else if (isNodeBuiltin(specifier)) {
        nodeImports.push(`${relative(ROOT, path)} → ${specifier}`);
      }
    }
  }
  return { modules: [...seen], nodeImports };
}

test("the scanner sees static imports, not type-only or dynamic ones", () => {
  const found = staticImports(
    "x.ts",
    [
      '/** import { a } from "node:comment"; */',
      'import process from "node:process";',
      'import { type A, b } from "./b.ts";',
      'import { type C } from "node:c";',
      'import type { D } from "node:d";',
      'import "./side.ts";',
      'export * from "./e.ts";',
      'export type { F } from "node:f";',
      'const g = `import h from "node:template"`;',
      'async function i() { await import("node:dynamic"); }',
    ].join("\n"),
  );
  assert.deepEqual(found, [
    "node:process",
    "./b.ts",
    "node:c",
    "./side.ts",
    "./e.ts",
  ]);
});

test("mod.ts and what it imports statically import no node: module", async () => {
  const graph = await scanGraph(join(ROOT, "mod.ts"));
  const reached = graph.modules.map((path) => relative(ROOT, path));
  // The walk really follows the graph, down to the lazy node: adapters.
  for (
    const module of [
      "src/save/save.ts",
      "src/save/tar_writer.ts",
      "src/runtime/_import.ts",
      "src/sources/oci_layout.ts",
    ]
  ) {
    assert.ok(reached.includes(module), `${module} not reached: ${reached}`);
  }
  assert.deepEqual(graph.nodeImports, []);
  // And it does see a top-level node: import where there is one.
  const cli = await scanGraph(join(ROOT, "src", "cli.ts"));
  assert.ok(
    cli.nodeImports.some((line) => line.endsWith("node:process")),
    `src/cli.ts: ${cli.nodeImports}`,
  );
});

// ---------------------------------------------------------------------------
// The npm package

test("deno.json (JSR) and package.json (npm) describe the same package", async () => {
  const deno = JSON.parse(await readFile(join(ROOT, "deno.json"), "utf8"));
  const npm = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
  assert.equal(deno.name, "@docker-save/docker-save");
  assert.equal(npm.name, "docker-save");
  assert.equal(deno.version, npm.version);
  assert.equal(deno.license, npm.license);
  assert.deepEqual(deno.exports, { ".": "./mod.ts", "./cli": "./src/cli.ts" });
  assert.deepEqual(Object.keys(npm.exports), [".", "./cli", "./package.json"]);
  assert.equal(npm.exports["."].default, "./dist/mod.js");
  assert.equal(npm.exports["./cli"].default, "./dist/src/cli.js");
  assert.equal(npm.bin["docker-save"], "./dist/bin/docker-save.js");
  // Every package deno.json maps is an npm one too, for the sources or the
  // tests ("docker-save" itself maps to ./mod.ts, for the docs' examples).
  for (const [name, target] of Object.entries(deno.imports)) {
    if (String(target).startsWith("./")) continue;
    const bare = name.replace(/\/$/, "");
    assert.ok(
      bare in npm.dependencies || bare in npm.devDependencies,
      `${bare} missing from package.json`,
    );
  }
});

test("package.json: a dependency is one the sources load, a test's is a devDependency", async () => {
  const npm = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
  // What mod.ts and src/ name as a module: `from "x"`, `import("x")`, or the
  // variable specifier some lazy imports use (`const name: string = "x"`).
  const files = [
    join(ROOT, "mod.ts"),
    ...(await readdir(join(ROOT, "src"), { recursive: true }))
      .filter((name) => name.endsWith(".ts"))
      .map((name) => join(ROOT, "src", name)),
  ];
  const loaded = new Set<string>();
  for (const file of files) {
    const text = await readFile(file, "utf8");
    for (
      const [, specifier] of text.matchAll(
        /(?:from |import\(|name: string = )"([^".][^"]*)"/g,
      )
    ) {
      // Node's own modules (src/ names them node:…; Bun counts "undici" as
      // one of its own), the examples' "docker-save", a template's `${…}`.
      if (specifier.startsWith("node:") || !/^[@a-z]/.test(specifier)) {
        continue;
      }
      if (specifier.split("/")[0] === "docker-save") continue;
      const parts = specifier.split("/");
      loaded.add(
        specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0],
      );
    }
  }
  assert.deepEqual(
    Object.keys(npm.dependencies).sort(),
    [...loaded].sort(),
    "package.json dependencies against what src/ and mod.ts load",
  );
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

// npm settings a child npm may inherit from an `npm test` run: where the
// cache and registry are and how to reach them. The rest of npm's lifecycle
// environment (npm_config_local_prefix, npm_config_call, npm_package_*, …)
// would make the child npm act on this repository or run something else.
const NPM_KEPT =
  /^npm_config_(cache|registry|userconfig|globalconfig|cafile|ca|proxy|https_proxy|noproxy|strict_ssl|offline|prefer_offline|prefer_online)$/i;

// Children see no tsx or other loader of this test run, and no npm lifecycle.
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) {
    if (/^npm_/i.test(key) && !NPM_KEPT.test(key)) delete env[key];
  }
  return { ...env, ...extra };
}

function run(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<Run> {
  return new Promise((done) => {
    execFile(
      command,
      args,
      { cwd, env: childEnv(env), maxBuffer: 16 << 20, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error
          ? typeof (error as { code?: unknown }).code === "number"
            ? (error as { code: number }).code
            : 1
          : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

async function ok(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<string> {
  const result = await run(command, args, cwd, env);
  assert.equal(
    result.code,
    0,
    `${command} ${
      args.join(" ")
    } exited ${result.code}:\n${result.stderr}\n${result.stdout}`,
  );
  return result.stdout;
}

interface PackResult {
  filename: string;
  files: { path: string; mode?: number }[];
}

// Saves the golden case through the installed package's API, in plain Node.
const CONSUMER = `
import { writeFile } from "node:fs/promises";
import process from "node:process";
import { fromOciLayout, save, saveToFile, DockerSaveError } from "docker-save";
import { USAGE } from "docker-save/cli";
if (!USAGE.startsWith("Usage: docker-save")) throw new Error("no USAGE");
if (typeof DockerSaveError !== "function") throw new Error("no DockerSaveError");
const { DS_OCI, DS_REF, DS_TAG, DS_OUT } = process.env;
const image = await fromOciLayout(DS_OCI, DS_REF);
const chunks = [];
for await (const chunk of save([[DS_TAG, image]])) chunks.push(chunk);
await writeFile(DS_OUT + ".stream", Buffer.concat(chunks));
await saveToFile(DS_OUT + ".file", [[DS_TAG, await fromOciLayout(DS_OCI, DS_REF)]]);
console.log("saved");
`;

// Uses the package's types as a TypeScript user would.
const TYPED_CONSUMER = `
import {
  DockerSaveError,
  fromOciLayout,
  type Image,
  save,
  type SaveOptions,
} from "docker-save";
import { main, USAGE } from "docker-save/cli";
export async function tarball(dir: string): Promise<ReadableStream<Uint8Array>> {
  const image: Image = await fromOciLayout(dir, "app");
  const options: SaveOptions = { verify: true };
  return save([["registry.example.com/app:v1", image]], options);
}
export function codeOf(error: unknown): string | undefined {
  return error instanceof DockerSaveError ? error.code : undefined;
}
export const run: (argv: readonly string[]) => Promise<number> = main;
export const usage: string = USAGE;
`;

test(
  "npm pack → npm install → plain Node saves the golden case, and the bin works",
  { timeout: TOOL_TIMEOUT },
  async () => {
    // Plain Node: this one, or the one on PATH under Deno and Bun.
    const NODE = runtime === "node" ? process.execPath : "node";
    const work = await mkdtemp(join(tmpdir(), "docker-save-package-"));
    try {
      // npm pack runs prepack (npm run build) and writes the tarball; the
      // build says what it runs (tsc is silent for seconds, npm pack too).
      const pack = await run(
        "npm",
        ["pack", "--json", "--pack-destination", work],
        ROOT,
      );
      assert.equal(pack.code, 0, pack.stderr);
      assert.match(
        pack.stderr,
        /^build: compiling mod\.ts and src\/ into dist\/ \(tsc\)\n/m,
      );
      assert.match(pack.stderr, /^build: dist\/ written in \d+\.\d s$/m);
      const packed = JSON.parse(pack.stdout) as PackResult[];
      assert.equal(packed.length, 1);
      const { filename, files } = packed[0];
      const paths = files.map((file) => file.path).sort();

      // Only what users need: package.json, README, license, dist/.
      for (const path of paths) {
        assert.ok(
          /^(package\.json|README\.md|LICENSE(\.md)?)$/.test(path) ||
            (path.startsWith("dist/") &&
              (path.endsWith(".js") || path.endsWith(".d.ts"))),
          `unexpected file in the package: ${path}`,
        );
      }
      for (
        const path of [
          "package.json",
          "README.md",
          "LICENSE",
          "dist/mod.js",
          "dist/mod.d.ts",
          "dist/src/cli.js",
          "dist/src/cli.d.ts",
          "dist/bin/docker-save.js",
        ]
      ) {
        assert.ok(paths.includes(path), `${path} not packed: ${paths}`);
      }

      // An empty project installs the tarball (dependencies from the cache
      // where they are; the registry otherwise).
      const project = join(work, "project");
      await mkdir(project);
      await writeFile(
        join(project, "package.json"),
        JSON.stringify({ name: "consumer", private: true, type: "module" }),
      );
      await ok("npm", [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        join(work, filename),
      ], project);
      const installed = join(project, "node_modules", "docker-save");
      await assert.rejects(
        stat(join(project, "node_modules", "tsx")),
        "tsx must not be in the consumer project",
      );

      // The built core has no top-level node: import either.
      const mod = await readFile(join(installed, "dist", "mod.js"), "utf8");
      assert.doesNotMatch(mod, /^\s*import\b[^;]*?from\s*["']node:/m);
      const dist = await scanGraph(join(installed, "dist", "mod.js"));
      assert.ok(dist.modules.length > 10, `${dist.modules}`);
      assert.deepEqual(dist.nodeImports, []);

      // The API, from plain Node.
      const expected = new Uint8Array(
        await readFile(join(BASIC, "expected.tar")),
      );
      const { save: [{ ref, tag }] } = JSON.parse(
        await readFile(join(BASIC, "case.json"), "utf8"),
      ) as { save: { ref: string; tag: string }[] };
      const out = join(work, "basic");
      const said = await ok(
        NODE,
        ["--input-type=module", "-e", CONSUMER],
        project,
        { DS_OCI: join(BASIC, "oci"), DS_REF: ref, DS_TAG: tag, DS_OUT: out },
      );
      assert.equal(said.trim(), "saved");
      for (const suffix of [".stream", ".file"]) {
        const actual = new Uint8Array(await readFile(out + suffix));
        assert.ok(
          Buffer.compare(actual, expected) === 0,
          `save() through the package (${suffix}) differs from expected.tar`,
        );
      }

      // The API, from Deno in the same project: "docker-save" resolved
      // through package.json and node_modules (the README's Install).
      await writeFile(join(project, "consumer.mjs"), CONSUMER);
      const deno = join(ROOT, "node_modules", ".bin", "deno");
      const denoOut = join(work, "basic-deno");
      const denoSaid = await ok(deno, ["run", "-A", "consumer.mjs"], project, {
        DS_OCI: join(BASIC, "oci"),
        DS_REF: ref,
        DS_TAG: tag,
        DS_OUT: denoOut,
      });
      assert.equal(denoSaid.trim(), "saved");
      for (const suffix of [".stream", ".file"]) {
        const actual = new Uint8Array(await readFile(denoOut + suffix));
        assert.ok(
          Buffer.compare(actual, expected) === 0,
          `Deno: save() through the package (${suffix}) differs from expected.tar`,
        );
      }

      // The declarations serve a TypeScript consumer (NodeNext resolution,
      // no @types/node).
      await writeFile(join(project, "consumer.ts"), TYPED_CONSUMER);
      await writeFile(
        join(project, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            lib: ["ES2023", "DOM", "DOM.Iterable"],
            types: [],
            strict: true,
            noEmit: true,
          },
          files: ["consumer.ts"],
        }),
      );
      const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
      await ok(NODE, [tsc, "-p", "tsconfig.json"], project);

      // The bin: executable, a node shebang, usage on --help, and a save.
      const bin = join(installed, "dist", "bin", "docker-save.js");
      assert.ok(((await stat(bin)).mode & 0o111) !== 0, "bin not executable");
      assert.match(
        await readFile(bin, "utf8"),
        /^#!\/usr\/bin\/env (-S )?node( --max-semi-space-size=1)?( --expose-gc)?\n/,
      );
      const help = await ok("npx", ["docker-save", "--help"], project);
      assert.match(help, /^Usage: docker-save/);
      const linked = join(project, "node_modules", ".bin", "docker-save");
      await ok(linked, [
        "-q",
        "-o",
        `${out}.cli`,
        `oci:${join(BASIC, "oci")}:${ref}=${tag}`,
      ], project);
      assert.ok(
        Buffer.compare(await readFile(`${out}.cli`), expected) === 0,
        "the CLI's tarball differs from expected.tar",
      );
      const bad = await run(linked, ["--no-such-option"], project);
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, /^docker-save: /);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
);
