/**
 * What the CLI says when something is wrong (issues 19 and 20): one line on
 * stderr that names the cause and what to do, a non-zero exit, no stack.
 * Each test runs the CLI as a child process on the runtime running it.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { type Cleanup, tempDir, withCleanup } from "../_kit/cleanup.ts";
import { imageContent, startFakeRegistry } from "../_kit/fake_registry.ts";
import { goldenCases } from "../_kit/golden.ts";
import { listen } from "../_kit/http.ts";
import { makeParts } from "../_kit/images.ts";
import { runCli, runtimeCommand } from "../_kit/processes.ts";
import { layerTar } from "../_kit/tar.ts";
import { spawn } from "node:child_process";
import process from "node:process";
import { VERSION } from "../../src/cli/version.ts";

const [basic] = goldenCases().filter((c) => c.name === "basic");
const layout = `${basic.dir}/oci`;

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

// ------------------------------------------------ issue 20, item 6

/** A loopback port nothing listens on. */
async function closedPort(cleanup: Cleanup): Promise<number> {
  const { server } = await listen(cleanup, () => {});
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

withCleanup(
  "cli fails at once on a refused connection, naming it",
  async (cleanup) => {
    const host = `127.0.0.1:${await closedPort(cleanup)}`;
    const result = await runCli([`${host}/t/app:v1`]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `docker-save: Cannot fetch manifest of "${host}/t/app:v1": ${host} refused the connection (ECONNREFUSED)\n`,
    );
    // No "retry 1 of 5" line: six attempts with backoff took 10-13 s.
  },
);

test("cli fails at once on a host name that does not resolve, naming it", async () => {
  // .invalid never resolves (RFC 6761).
  const result = await runCli(["registry.invalid/t/app:v1"]);
  assert.equal(result.code, 1);
  assert.equal(
    result.stderr,
    'docker-save: Cannot fetch manifest of "registry.invalid/t/app:v1": cannot resolve the host name of registry.invalid (ENOTFOUND)\n',
  );
});

withCleanup(
  "cli suggests --insecure-registry HOST when an HTTPS request is answered in plain HTTP",
  async (cleanup) => {
    const parts = makeParts({ layers: [await layerTar({ "a.txt": "a" })] });
    const registry = await startFakeRegistry(
      cleanup,
      imageContent("t/app", "v1", parts),
    );
    // Not a loopback name, so HTTPS is spoken; it reaches the fake registry.
    const host = registry.host.replace("127.0.0.1", "0.0.0.0");
    const result = await runCli([`${host}/t/app:v1`]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(
        `^docker-save: Cannot fetch manifest of "${host}/t/app:v1": ${host} answered HTTPS in plain HTTP( \\(\\w+\\))?; if it is an HTTP registry, allow it with --insecure-registry ${host} \\(options.insecure\\)\\n$`,
      ),
    );
    // As suggested, it pulls.
    const insecure = await runCli([
      "-q",
      "--insecure-registry",
      host,
      `${host}/t/app:v1`,
    ]);
    assert.deepEqual([insecure.code, insecure.stderr], [0, ""]);
  },
);

withCleanup(
  "cli says what it retries, and why, while it waits",
  async (cleanup) => {
    const parts = makeParts({ layers: [await layerTar({ "a.txt": "a" })] });
    let failed = 0;
    const registry = await startFakeRegistry(cleanup, {
      ...imageContent("t/app", "v1", parts),
      answer: (request) =>
        request.path.includes("/manifests/") && failed++ < 1
          ? { status: 503, body: "busy" }
          : undefined,
    });
    const ref = `${registry.host}/t/app:v1`;
    const result = await runCli([ref]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr.split("\n")[0],
      new RegExp(
        `^docker-save: manifest of "${ref}": status 503; retry 1 of 5 in \\d+\\.\\d s$`,
      ),
    );
    // Quiet: nothing.
    failed = 0;
    const quiet = await runCli(["-q", ref]);
    assert.deepEqual([quiet.code, quiet.stderr], [0, ""]);
  },
);

// ------------------------------------------------ issue 19, defect 9

/**
 * The CLI with its stdout read until `bytes` arrived, then closed (as by
 * `docker-save … | head -c 1000`).
 */
function runIntoClosedPipe(args: string[], bytes: number) {
  const [cmd, ...pre] = runtimeCommand();
  const child = spawn(cmd, [...pre, ...args], {
    cwd: new URL("../../", import.meta.url).pathname,
    env: { ...process.env, DOCKER_CONFIG: "/nonexistent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let read = 0;
  child.stdout!.on("data", (chunk: Buffer) => {
    read += chunk.length;
    if (read >= bytes) child.stdout!.destroy();
  });
  let stderr = "";
  child.stderr!.on("data", (chunk) => stderr += chunk);
  return new Promise<
    { code: number | null; signal: string | null; stderr: string }
  >(
    (resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal, stderr })),
  );
}

withCleanup(
  "cli ends on a closed output pipe: no stack, a non-zero exit, every source cancelled",
  async (cleanup) => {
    // A layer whose blob stalls after 512 KiB: the save ends only if the
    // closed pipe cancels it.
    const tar = await layerTar({ "a.bin": "x".repeat(2 << 20) });
    const parts = makeParts({ layers: [tar] });
    const layer = parts.manifest.layers[0].digest;
    const registry = await startFakeRegistry(cleanup, {
      ...imageContent("t/app", "v1", parts),
      answer: (request) =>
        request.path.endsWith(`/blobs/${layer}`) && request.method === "GET"
          ? { body: tar, stallAfter: 512 << 10 }
          : undefined,
    });
    for (const quiet of [[], ["-q"]]) {
      const exit = await runIntoClosedPipe(
        [...quiet, `${registry.host}/t/app:v1`],
        1000,
      );
      assert.ok(exit.code !== 0, JSON.stringify(exit));
      assert.doesNotMatch(exit.stderr, /\n\s+at |Unhandled|Uncaught|EPIPE'/);
      const errors = exit.stderr.split("\n").filter((line) =>
        line.startsWith("docker-save: ")
      );
      assert.ok(errors.length <= 1, exit.stderr);
      assert.equal(
        exit.stderr.split("\n").filter((line) =>
          line && !line.startsWith("sha256:")
        ).length,
        errors.length,
        exit.stderr,
      );
    }
  },
);

// ------------------------------------------------ a new user's first hour

/** The CLI, quiet, asked for `platforms` of `source` (`extra` before it). */
function runForPlatforms(
  platforms: string,
  source: string,
  ...extra: string[]
) {
  return runCli(["-q", "--platform", platforms, ...extra, source]);
}

test("cli --platform of a single image from a layout must be its platform", async () => {
  // The golden layout's one entry is a linux/amd64 image, not an index. A
  // registry's says so (PLATFORM_NOT_FOUND); a layout's was saved as it is,
  // exit 0, a tarball without the platform asked for.
  const source = `oci:${layout}:basic=app:v1`;
  const one = await runForPlatforms("linux/arm64", source);
  assert.equal(one.code, 1);
  assert.equal(
    one.stderr,
    `docker-save: Cannot choose platform linux/arm64 from OCI layout "${layout}" ref "basic": it is a single linux/amd64 image\n`,
  );
  const list = await runForPlatforms(
    "linux/amd64,linux/arm64",
    source,
    "--format",
    "oci",
  );
  assert.equal(list.code, 1);
  assert.equal(
    list.stderr,
    "docker-save: Cannot save platforms linux/arm64: the image is not an index and has one platform, linux/amd64\n",
  );
  // Its own platform still saves.
  const own = await runForPlatforms("linux/amd64", source);
  assert.equal(own.code, 0, own.stderr);
});

withCleanup(
  "cli says which prefix reads a SOURCE that is a local file or directory",
  async (cleanup) => {
    // Read as image references, these failed with no word of the file
    // ("cannot resolve the host name of registry-1.docker.io" for app.tar).
    const dir = await tempDir(cleanup, "cli");
    const file = `${dir}/app.tar`;
    await writeFile(file, "");
    const asFile = await runCli(["-q", file]);
    assert.equal(asFile.code, 1);
    assert.match(
      asFile.stderr,
      new RegExp(
        `^docker-save: Cannot parse reference "${file}": [^\\n]*; "${file}" is a file here: docker-archive:${file} \\(or oci-archive:${file}\\) reads it\\n$`,
      ),
    );
    const asDir = await runCli(["-q", dir]);
    assert.equal(asDir.code, 1);
    assert.match(
      asDir.stderr,
      new RegExp(
        `^docker-save: Cannot parse reference "${dir}": [^\\n]*; "${dir}" is a directory here: oci:${dir}=TAG reads an OCI layout\\n$`,
      ),
    );
    // Nothing there: no such note.
    const none = await runCli(["-q", `${dir}/missing.tar`]);
    assert.equal(none.code, 1);
    assert.doesNotMatch(none.stderr, /here:/);
  },
);

test("cli --platform of a docker archive's image must be its platform", async () => {
  // The golden docker archive holds one linux/amd64 image; --platform was
  // ignored for it (exit 0, the amd64 image saved).
  const archive = `${basic.dir}/expected.tar`;
  const source = `docker-archive:${archive}`;
  const one = await runForPlatforms("linux/arm64", source);
  assert.equal(one.code, 1);
  assert.equal(
    one.stderr,
    `docker-save: Cannot choose platform linux/arm64 from docker archive "${archive}": it is a single linux/amd64 image\n`,
  );
  const list = await runForPlatforms(
    "linux/arm64,linux/amd64",
    source,
    "--format",
    "oci",
  );
  assert.equal(list.code, 1);
  assert.equal(
    list.stderr,
    "docker-save: Cannot save platforms linux/arm64: the image is not an index and has one platform, linux/amd64\n",
  );
  const own = await runForPlatforms("linux/amd64", source);
  assert.equal(own.code, 0, own.stderr);
  assert.ok(Buffer.from(basic.expected).equals(own.stdout));
});
