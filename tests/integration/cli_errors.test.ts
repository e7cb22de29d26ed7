/**
 * What the CLI says when something is wrong (issues 19 and 20): one line on
 * stderr that names the cause and what to do, a non-zero exit, no stack.
 * Each test runs the CLI as a child process on the runtime running it.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { goldenCases } from "../_golden.ts";
import { runCli } from "../_cli.ts";
import { imageContent, startFakeRegistry } from "../_fake_registry.ts";
import { Cleanup, tempDir } from "../_registry.ts";
import { makeParts } from "../_fixtures.ts";
import { VERSION } from "../../src/cli/version.ts";

const [basic] = goldenCases().filter((c) => c.name === "basic");
const layout = `${basic.dir}/oci`;

/** A test with a `Cleanup` emptied at its end. */
function withCleanup(name: string, fn: (cleanup: Cleanup) => Promise<void>) {
  test(name, { timeout: 60_000 }, async () => {
    const cleanup = new Cleanup();
    try {
      await fn(cleanup);
    } finally {
      await cleanup.close();
    }
  });
}

// ------------------------------------------------ issue 20, item 8

test("cli --version and -v print the version of package.json", async () => {
  const pkg = JSON.parse(
    await readFile(new URL("../../package.json", import.meta.url), "utf8"),
  );
  const deno = JSON.parse(
    await readFile(new URL("../../deno.json", import.meta.url), "utf8"),
  );
  assert.equal(VERSION, pkg.version);
  assert.equal(deno.version, pkg.version);
  for (const flag of ["--version", "-v"]) {
    const { code, stdout, stderr } = await runCli([flag]);
    assert.deepEqual([code, stderr], [0, ""]);
    assert.equal(stdout.toString(), `docker-save ${pkg.version}\n`);
  }
});

test("cli says to drop the scheme of a source given as a URL", async () => {
  const { code, stderr } = await runCli([
    "-q",
    "https://registry.example.com/team/app:v1",
  ]);
  assert.equal(code, 1);
  assert.equal(
    stderr,
    'docker-save: Cannot parse reference "https://registry.example.com/team/app:v1": a reference has no scheme; drop "https://" (registry.example.com/team/app:v1)\n',
  );
});

withCleanup(
  "cli says it looked up :latest when a tagless REPO is not found",
  async (cleanup) => {
    const parts = makeParts({ layers: [] });
    const registry = await startFakeRegistry(
      cleanup,
      imageContent("t/app", "v1", parts),
    );
    const dir = await tempDir(cleanup, "cli");
    const tagless = await runCli([
      "-q",
      "-o",
      `${dir}/out.tar`,
      `${registry.host}/t/app`,
    ]);
    assert.equal(tagless.code, 1);
    assert.match(
      tagless.stderr,
      new RegExp(
        `^docker-save: Cannot fetch manifest of "${registry.host}/t/app": not found \\(status 404[^\\n]*\\); no tag was given, so :latest was looked up\\n$`,
      ),
    );
    // A tag given: no such note.
    const tagged = await runCli([
      "-q",
      "-o",
      `${dir}/out.tar`,
      `${registry.host}/t/app:v2`,
    ]);
    assert.equal(tagged.code, 1);
    assert.doesNotMatch(tagged.stderr, /latest/);
  },
);

withCleanup(
  "cli saves oci-archive:FILE of one entry as that entry's ref name, as docker-archive:FILE keeps its tag",
  async (cleanup) => {
    const dir = await tempDir(cleanup, "cli");
    const oci = `${dir}/oci.tar`;
    const made = await runCli([
      "-q",
      "--format",
      "oci",
      "--layers",
      "compressed", // the original blobs: the golden v1 ids
      "-o",
      oci,
      `oci:${layout}=oracle/basic:v1`,
    ]);
    assert.equal(made.code, 0, made.stderr);
    const back = await runCli(["-q", `oci-archive:${oci}`]);
    assert.equal(back.code, 0, back.stderr);
    assert.ok(Buffer.from(basic.expected).equals(back.stdout));
  },
);

// ------------------------------------------------ issue 19, defect 7

test("cli gives a port above 65535 a typed error, not Invalid URL", async () => {
  const { code, stderr } = await runCli(["-q", "localhost:99999/team/app"]);
  assert.equal(code, 1);
  assert.equal(
    stderr,
    'docker-save: Cannot parse reference "localhost:99999/team/app": registry "localhost:99999" has port 99999, above 65535\n',
  );
});
