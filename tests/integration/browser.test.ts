/**
 * docker-save in a browser, without `node:`: tests/_kit/browser/entry.ts (which
 * imports mod.ts and the worker example) is bundled by esbuild for
 * `platform: "browser"`, served with a page and the golden test data from a
 * node:http server on 127.0.0.1, and run in Debian's headless chromium
 * driven by playwright-core (never a downloaded browser), with a fresh
 * user-data-dir. In the page, the golden "basic" case (gzip layers) is saved
 * from an in-memory image and hashed with `crypto.subtle`; the bytes must be
 * those of its expected.tar. The worker example's `fetch` runs in the page
 * too.
 *
 * The web fallbacks must be what ran: the bundle resolves no `node:` module,
 * `import("node:zlib")` fails in the page, and an esbuild plugin records that
 * fflate (gunzip) and @noble/hashes (incremental sha256) were evaluated, only
 * once a save needed them.
 *
 * Skipped without /usr/bin/chromium unless CI is set (then it fails). Runs
 * on Node, Deno and Bun alike (esbuild and playwright-core work on all three).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import process from "node:process";
import { build, type Plugin } from "esbuild";
import { chromium } from "playwright-core";
import { save } from "../../src/save/save.ts";
import { sampleImage } from "../../examples/_image.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases } from "../_kit/golden.ts";
import { sha256Hex } from "../_kit/digest.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const skip = existsSync(CHROMIUM) || ci ? false : `${CHROMIUM} not installed`;

// Modules whose evaluation the bundle records: the web fallbacks.
const PROBED = /^(fflate|@noble\/hashes\/sha2\.js)$/;
const probe: Plugin = {
  name: "probe",
  setup(build) {
    build.onResolve(
      { filter: PROBED },
      (args) =>
        args.namespace === "probe"
          ? undefined
          : { path: args.path, namespace: "probe" },
    );
    build.onLoad({ filter: /.*/, namespace: "probe" }, (args) => ({
      contents: `export * from ${JSON.stringify(args.path)};
(globalThis.__dockerSaveLoaded ??= []).push(${JSON.stringify(args.path)});`,
      resolveDir: ROOT,
      loader: "js",
    }));
  },
};

async function bundle() {
  const result = await build({
    entryPoints: [join(ROOT, "tests/_kit/browser/entry.ts")],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
    plugins: [probe],
  });
  return {
    code: result.outputFiles[0].text,
    warnings: result.warnings,
    inputs: Object.keys(result.metafile.inputs),
    imports: Object.values(result.metafile.outputs).flatMap((output) =>
      output.imports.map((i) => i.path)
    ),
  };
}

/** Serves the page, the bundle and tests/testdata on 127.0.0.1. */
async function serve(code: string): Promise<{ server: Server; url: string }> {
  const page = await readFile(join(ROOT, "tests/_kit/browser/index.html"));
  const testdata = join(ROOT, "tests/testdata");
  const server = createServer(async (request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    try {
      if (path === "/") {
        response.writeHead(200, { "content-type": "text/html" });
        response.end(page);
      } else if (path === "/bundle.js") {
        response.writeHead(200, { "content-type": "text/javascript" });
        response.end(code);
      } else if (path.startsWith("/testdata/")) {
        const file = normalize(join(testdata, path.slice("/testdata/".length)));
        if (!file.startsWith(testdata + "/")) throw new Error("outside");
        const bytes = await readFile(file);
        response.writeHead(200, { "content-type": "application/octet-stream" });
        response.end(bytes);
      } else {
        response.writeHead(404).end();
      }
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}` };
}

test(
  "the browser bundle saves the golden basic case in headless chromium, without node:",
  { skip, timeout: 120_000 },
  async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt chromium)`);
    const basic = goldenCases().find((c) => c.name === "basic")!;
    const [{ ref, tag }] = basic.save;
    // The case must exercise gunzip: its layers are gzip.
    const index = JSON.parse(
      await readFile(join(basic.dir, "oci/index.json"), "utf8"),
    );
    const manifest = JSON.parse(
      await readFile(
        join(basic.dir, "oci/blobs/sha256", index.manifests[0].digest.slice(7)),
        "utf8",
      ),
    );
    assert.ok(
      manifest.layers.some((l: { mediaType: string }) =>
        l.mediaType.endsWith("gzip")
      ),
      "the basic case has no gzip layer",
    );

    const bundled = await bundle();
    assert.deepEqual(
      bundled.inputs.filter((input) => input.startsWith("node:")),
      [],
      "the bundle resolves node: modules",
    );
    assert.deepEqual(
      bundled.imports.filter((path) => path.startsWith("node:")),
      [],
      "the bundle imports node: modules",
    );
    assert.doesNotMatch(bundled.code, /(from\s*|import\s*\(\s*)["']node:/);
    for (const fallback of ["node_modules/fflate/", "node_modules/@noble/"]) {
      assert.ok(
        bundled.inputs.some((input) => input.includes(fallback)),
        `${fallback} is not in the bundle`,
      );
    }

    const { server, url } = await serve(bundled.code);
    const userDataDir = await mkdtemp(join(tmpdir(), "docker-save-chromium-"));
    let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>>;
    try {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ARGS,
      });
    } catch (error) {
      server.close();
      await rm(userDataDir, { recursive: true, force: true });
      throw error;
    }
    try {
      const page = context.pages()[0] ?? await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      await page.goto(`${url}/`);
      await page.waitForFunction(() => "dockerSave" in globalThis);
      // Calls tests/_kit/browser/entry.ts's globalThis.dockerSave in the page.
      const call = <T>(expression: string) =>
        page.evaluate(`globalThis.dockerSave.${expression}`) as Promise<T>;

      assert.equal(await call<boolean>("canImportNode()"), false);
      assert.deepEqual(
        await call<string[]>("loaded()"),
        [],
        "fallbacks loaded before any save",
      );

      const golden = await call<{ sha256: string; size: number }>(
        `saveLayout(${JSON.stringify(`${url}/testdata/basic/oci/`)}, ${
          JSON.stringify(ref)
        }, ${JSON.stringify(tag)})`,
      );
      assert.equal(golden.size, basic.expected.byteLength);
      assert.equal(golden.sha256, sha256Hex(basic.expected));
      assert.deepEqual(
        (await call<string[]>("loaded()")).sort(),
        ["@noble/hashes/sha2.js", "fflate"],
        "the web fallbacks did not run",
      );

      const workerTag = "edge/browser:v1";
      const fromWorker = await call<{ sha256: string; size: number }>(
        `fetchWorker(${
          JSON.stringify(
            `http://worker.test/save?tag=${encodeURIComponent(workerTag)}`,
          )
        })`,
      );
      const expected = await readAll(
        save([[workerTag, await sampleImage()]]),
      );
      assert.equal(fromWorker.size, expected.byteLength);
      assert.equal(fromWorker.sha256, sha256Hex(expected));
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(userDataDir, { recursive: true, force: true });
    }
  },
);
