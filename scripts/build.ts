/**
 * `npm run build` (and `prepack`): compiles `mod.ts` and `src/cli.ts` with
 * everything they import into ESM JavaScript and `.d.ts` under `dist/`, for
 * the npm package (Node 20 cannot run `.ts`).
 *
 * - `tsc -p tsconfig.build.json` emits `dist/mod.js`, `dist/src/**` and their
 *   declarations; `rewriteRelativeImportExtensions` turns the sources'
 *   `./x.ts` imports into `./x.js`.
 * - tsc leaves `.ts` specifiers in declaration files; they are rewritten to
 *   `.js` so that TypeScript versions before 5 (and other tools) resolve them.
 * - `dist/bin/docker-save.js`, the npm `bin`: a `#!/usr/bin/env node` script
 *   (with `--max-semi-space-size=1 --expose-gc`, see `SHEBANG`)
 *   that runs the CLI's `main`. npm links bins as `node_modules/.bin/NAME`,
 *   under which name `src/cli.ts` would not recognise itself as the entry
 *   module on Node 20 (no `import.meta.main`). It is the CLI bundled into
 *   one file by esbuild (npm dependencies stay imports): Node 20 loading the
 *   ~90 files of `dist/src` one by one took ~0.08 s more CPU per run (see
 *   `bundleBin`).
 * - Everything is written to `.build-PID/` first and renamed to `dist/` at the
 *   end.
 *
 * ```sh
 * node --import tsx scripts/build.ts
 * ```
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import {
  chmod,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DIST = join(ROOT, "dist");

/**
 * The bin script; `main` returns the exit status. V8's young generation is
 * capped at 1 MiB: streaming churns through short-lived chunk objects, and
 * the default lets it grow to tens of MiB (measured: 4 GiB layer, peak RSS
 * 120 MiB by default, ~71 MiB capped, same speed). `gc` is exposed so that
 * the socket buffers Node 20 cannot free early are collected every few MiB
 * (`countGarbage` in src/runtime/chunk_release.ts).
 */
const SHEBANG = "#!/usr/bin/env -S node --max-semi-space-size=1 --expose-gc";
const BIN = `import process from "node:process";
import { main } from "../src/cli.js";

process.exitCode = await main(process.argv.slice(2));
`;

/**
 * Writes the bin: `BIN` (beside the compiled `src/`) with what it imports
 * bundled in. Measured, `--help` on Node 20, 6 interleaved runs: 0.28 s
 * user + 0.10 s sys for the separate files against 0.20 + 0.06 s bundled.
 * `import.meta.main` is defined false so that the bundled `src/cli.js`
 * does not also run itself as the entry.
 */
async function bundleBin(outDir: string, bin: string): Promise<void> {
  const esbuild = await import("esbuild");
  await esbuild.build({
    stdin: {
      contents: BIN,
      resolveDir: join(outDir, "bin"),
      sourcefile: "entry.js",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    define: { "import.meta.main": "false" },
    banner: { js: SHEBANG },
    outfile: bin,
    absWorkingDir: outDir,
    logLevel: "warning",
  });
}

/**
 * Rewrites relative `.ts` module specifiers of a declaration file to `.js`
 * (code lines only; JSDoc examples are left as written).
 */
function rewriteDeclaration(text: string): string {
  return text.split("\n").map((line) =>
    /^\s*(\*|\/\/)/.test(line) ? line : line.replace(
      /((?:from\s+|import\s*\(\s*|import\s+)["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g,
      "$1$2.js$3",
    )
  ).join("\n");
}

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

async function build(): Promise<void> {
  // Built beside dist/ and swapped in at the end, so that a concurrent build
  // (two test runs packing at once) never leaves another a half-written dist/.
  const out = join(ROOT, `.build-${process.pid}`);
  await rm(out, { recursive: true, force: true });
  // tsc takes seconds (a minute on a busy machine), and npm pack shows
  // nothing of its own meanwhile: say what is running.
  const started = performance.now();
  process.stderr.write("build: compiling mod.ts and src/ into dist/ (tsc)\n");
  try {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    execFileSync(
      process.execPath,
      [tsc, "-p", "tsconfig.build.json", "--outDir", out],
      { cwd: ROOT, stdio: ["ignore", process.stderr, process.stderr] },
    );
    for await (const path of files(out)) {
      if (!path.endsWith(".d.ts")) continue;
      const text = await readFile(path, "utf8");
      const rewritten = rewriteDeclaration(text);
      if (rewritten !== text) await writeFile(path, rewritten);
    }
    await mkdir(join(out, "bin"), { recursive: true });
    const bin = join(out, "bin", "docker-save.js");
    await bundleBin(out, bin);
    await chmod(bin, 0o755);
    for (let attempt = 0;; attempt++) {
      await rm(DIST, { recursive: true, force: true });
      try {
        await rename(out, DIST);
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        process.stderr.write(`build: dist/ written in ${seconds} s\n`);
        return;
      } catch (error) {
        // Another build put its dist/ back in between: replace it again.
        if (attempt >= 5) throw error;
      }
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

await build();
