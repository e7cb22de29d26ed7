import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
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
import { gzipSync } from "node:zlib";
import { packTar } from "modern-tar";
import { parseArgs, parseSource } from "../../src/cli.ts";
import { errorLine } from "../../src/cli/errors.ts";
import { untrustedText } from "../../src/util/untrusted_text.ts";
import { DockerSaveError } from "../../src/model/errors.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { concat } from "../_kit/bytes.ts";
import { Cleanup, tempDir } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { imageContent, startFakeRegistry } from "../_kit/fake_registry.ts";
import { MEDIA } from "../_kit/format.ts";
import { goldenCases } from "../_kit/golden.ts";
import { makeParts } from "../_kit/images.ts";
import { runCli, runtimeCommand } from "../_kit/processes.ts";
import {
  pushLayout,
  registryTest,
  startProxy,
  startRegistry,
  tokenRegistryWithBasic,
} from "../_kit/registry.ts";
import { layerTar } from "../_kit/tar.ts";

const run = runCli;

const [basic] = goldenCases().filter((c) => c.name === "basic");
const layout = `${basic.dir}/oci`;

test("cli --help documents the SOURCE syntax and exits 0", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout.toString(), /oci:DIR\[:REF\]\[=TAG\]/);
  assert.match(stdout.toString(), /\[docker:\/\/\]REF\[=TAG\]/);
  assert.match(stdout.toString(), /--insecure-registry HOST/);
});

test("cli -o FILE writes the golden tarball", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    const out = `${dir}/out.tar`;
    const { code, stderr } = await run([
      "-o",
      out,
      `oci:${layout}:basic=oracle/basic:v1`,
    ]);
    assert.equal(code, 0);
    // Not a terminal: one progress line per layer. The OCI layout gives no
    // uncompressed sizes, but a file can seek: each layer is read once and
    // its header patched.
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 3, stderr);
    assert.match(
      lines[2],
      /^sha256:[0-9a-f]{12} \d+(\.\d)? (B|KiB|MiB) \(oracle\/basic:v1\) \[3\/3\]$/,
    );
    assert.ok(Buffer.from(basic.expected).equals(await readFile(out)));
    assert.deepEqual(await readdir(dir), ["out.tar"]);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("cli writes stdout when stdout is not a terminal", async () => {
  const { code, stdout } = await run([`oci:${layout}=oracle/basic:v1`]);
  assert.equal(code, 0);
  assert.ok(Buffer.from(basic.expected).equals(stdout));
});

test("cli exits 1 with one line and leaves no file when a blob is corrupt", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    await cp(layout, `${dir}/oci`, { recursive: true });
    const manifest = JSON.parse(
      await readFile(
        `${dir}/oci/blobs/sha256/${
          JSON.parse(await readFile(`${dir}/oci/index.json`, "utf8"))
            .manifests[0].digest.slice(7)
        }`,
        "utf8",
      ),
    );
    const top = manifest.layers.at(-1).digest.slice(7);
    const blob = await readFile(`${dir}/oci/blobs/sha256/${top}`);
    blob[blob.length - 9] ^= 0xff; // inside the gzip trailer's CRC
    await writeFile(`${dir}/oci/blobs/sha256/${top}`, blob);
    const out = `${dir}/out.tar`;
    const { code, stderr } = await run([
      "--quiet",
      "-o",
      out,
      `oci:${dir}/oci=a/b:c`,
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /^docker-save: .*sha256:/);
    assert.equal(stderr.trimEnd().split("\n").length, 1);
    assert.deepEqual(await readdir(dir), ["oci"]);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("cli exits 1 on a bad tag and an unknown option", async () => {
  const bad = await run(["-o", "/dev/null", `oci:${layout}=Bad/Tag:v1`]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^docker-save: .*repository "Bad\/Tag"/);
  const unknown = await run(["--frobnicate"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown option "--frobnicate"/);
});

test("cli --quiet prints nothing on success", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    const { code, stderr } = await run([
      "--quiet",
      "-o",
      `${dir}/out.tar`,
      `oci:${layout}:basic=oracle/basic:v1`,
    ]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("cli reads docker archives and writes every format", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    const two = goldenCases().find((c) => c.name === "same-image-two-tags")!;
    // A reference tarball read back and saved again is the same tarball.
    const again = await run(["-q", `docker-archive:${basic.dir}/expected.tar`]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(Buffer.from(basic.expected).equals(again.stdout));
    // Re-tagged from a two-tag archive: the tag chooses, =NEWTAG renames.
    const retag = await run([
      "-q",
      `docker-archive:${two.dir}/expected.tar:another/repo:v2=new/name:v3`,
    ]);
    assert.equal(retag.code, 0, retag.stderr);
    assert.match(
      retag.stdout.toString("latin1"),
      /"RepoTags": \["new\/name:v3"\]/,
    );
    // docker+oci with compressed layers keeps the original blobs, so the
    // reference's bytes come back from it.
    const both = `${dir}/both.tar`;
    const out = await run([
      "-q",
      "--format",
      "docker+oci",
      "--layers=compressed",
      "-o",
      both,
      `oci:${layout}=oracle/basic:v1`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const back = await run(["-q", `docker-archive:${both}`]);
    assert.ok(Buffer.from(basic.expected).equals(back.stdout));
    // An oci layout tarball reads back by its ref name.
    const oci = `${dir}/oci.tar`;
    assert.equal(
      (await run([
        "-q",
        "--format",
        "oci",
        "-o",
        oci,
        `oci:${layout}=oracle/basic:v1`,
      ]))
        .code,
      0,
    );
    const fromOci = await run([
      "-q",
      "--layers",
      "compressed",
      `oci-archive:${oci}:oracle/basic:v1=x/y:z`,
    ]);
    assert.equal(fromOci.code, 0, fromOci.stderr);
    assert.match(fromOci.stdout.toString("latin1"), /"RepoTags": \["x\/y:z"\]/);
    const bad = await run(["--format", "zip", `oci:${layout}=a/b:c`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--format takes docker, oci or docker\+oci/);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("parseSource() reads registry references, TAG defaulting to REF as written", async () => {
  const digest = `sha256:${"a".repeat(64)}`;
  for (
    const [source, reference, tag] of [
      ["alpine:3.20", "alpine:3.20", "alpine:3.20"],
      ["docker://alpine", "alpine", "alpine:latest"],
      [
        "localhost:5000/team/app",
        "localhost:5000/team/app",
        "localhost:5000/team/app:latest",
      ],
      ["ghcr.io/org/app:1.2=app:1.2", "ghcr.io/org/app:1.2", "app:1.2"],
      [`a/b:1@${digest}`, `a/b:1@${digest}`, "a/b:1"],
      [`a/b@${digest}=a/b:pinned`, `a/b@${digest}`, "a/b:pinned"],
    ]
  ) {
    assert.deepEqual(await parseSource(source), {
      kind: "registry",
      reference,
      tag,
    });
  }
  await assert.rejects(parseSource(`a/b@${digest}`), {
    name: "UsageError",
    message: new RegExp("is pulled by digest: name the tag to save it as"),
  });
  await assert.rejects(parseSource("containers-storage:x"), {
    name: "DockerSaveError",
    code: "BAD_REFERENCE",
    message: new RegExp(
      'source "containers-storage:x": its transport is not supported',
    ),
  });
  await assert.rejects(parseSource("docker-archive:/nonexistent/x.tar"), {
    name: "DockerSaveError",
    message: /no such file/,
  });
  await assert.rejects(parseSource("Alpine"), {
    name: "DockerSaveError",
    code: "BAD_REFERENCE",
  });
  assert.deepEqual(await parseSource(`oci:${layout}:basic`), {
    kind: "oci",
    dir: layout,
    ref: "basic",
    tag: "basic",
  });
});

test("parseArgs() reads the registry options", () => {
  const args = parseArgs([
    "--platform",
    "linux/arm64/v8",
    "--creds=me:pa:ss",
    "--insecure-registry",
    "a.example:5000",
    "--insecure-registry=b.example",
    "-q",
    "--allow-foreign-layers",
    "--uncompressed-sizes",
    "count",
    "alpine",
  ]);
  assert.equal(args.platform, "linux/arm64/v8");
  assert.deepEqual(args.credentials, { username: "me", password: "pa:ss" });
  assert.deepEqual(args.insecure, ["a.example:5000", "b.example"]);
  assert.equal(args.quiet, true);
  assert.equal(args.allowForeignLayers, true);
  assert.equal(args.uncompressedSizes, "count");
  assert.deepEqual(args.sources, ["alpine"]);
  assert.throws(() => parseArgs(["--platform", "linux"]), {
    message:
      '--platform takes os/arch[/variant], a comma-separated list of them, all or available, not "linux" (see --help)',
  });
  assert.throws(() => parseArgs(["--creds", "nocolon"]), {
    message: "--creds takes USER:PASS or HOST=USER:PASS (see --help)",
  });
});

test("parseArgs() reads --concurrency N, a positive whole number", () => {
  assert.equal(parseArgs(["alpine"]).concurrency, undefined);
  assert.equal(parseArgs(["--concurrency", "1", "alpine"]).concurrency, 1);
  assert.equal(parseArgs(["--concurrency=8", "alpine"]).concurrency, 8);
  for (const bad of ["0", "-1", "2.5", "x", ""]) {
    assert.throws(() => parseArgs([`--concurrency=${bad}`, "alpine"]), {
      message:
        `--concurrency takes a positive whole number, not "${bad}" (see --help)`,
    });
  }
});

test("errorLine() hints at --uncompressed-sizes count by the error's code, not its text", () => {
  const hint = /retry with --uncompressed-sizes count\)$/;
  const short = new DockerSaveError(
    "UNCOMPRESSED_SIZE_MISMATCH",
    "Cannot verify layer sha256:ab: it has 5 bytes, expected 6",
  );
  assert.match(errorLine(short, "trailer").trimEnd(), hint);
  // Sizes counted: nothing to retry.
  assert.doesNotMatch(errorLine(short, "count"), /retry/);
  // A blob of the wrong size, whatever its message says.
  const blob = new DockerSaveError(
    "SIZE_MISMATCH",
    "Cannot verify uncompressed layer sha256:ab: it has 5 bytes, expected 6",
  );
  assert.doesNotMatch(errorLine(blob, "trailer"), /retry/);
});

test("cli suggests --uncompressed-sizes count for a multi-member gzip layer, and saves with it", async () => {
  const cleanup = new Cleanup();
  try {
    const tar = await layerTar({ "a.txt": "first member", "b.txt": "second" });
    // Two gzip members: the trailer holds the second one's size only.
    const blob = concat([
      gzipSync(tar.subarray(0, 512)),
      gzipSync(tar.subarray(512)),
    ]);
    const parts = makeParts({ layers: [tar] });
    parts.blobs.clear();
    parts.blobs.set(digestOf(blob), blob);
    parts.manifest.layers = [{
      mediaType: MEDIA.dockerLayerGzip,
      size: blob.byteLength,
      digest: digestOf(blob),
    }];
    const registry = await startFakeRegistry(
      cleanup,
      imageContent("t/multi", "v1", parts),
    );
    const dir = await tempDir(cleanup, "cli");
    const ref = `${registry.host}/t/multi:v1`;
    const trailer = await run(["-q", "-o", `${dir}/out.tar`, ref]);
    assert.equal(trailer.code, 1);
    assert.match(
      trailer.stderr,
      /^docker-save: [^\n]*retry with --uncompressed-sizes count\)\n$/,
    );
    assert.deepEqual(await readdir(dir), []);
    const counted = await run([
      "-q",
      "--uncompressed-sizes",
      "count",
      "-o",
      `${dir}/out.tar`,
      ref,
    ]);
    assert.equal(counted.code, 0, counted.stderr);
    assert.deepEqual(await readdir(dir), ["out.tar"]);
  } finally {
    await cleanup.close();
  }
});

// A terminal acts on C0 and C1 controls (ESC sequences: OSC 52 writes the
// clipboard, CR rewrites the line); the CLI's stderr may only carry its own
// newlines.
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

test("untrustedText() shows control characters and bidirectional marks as escapes, once, and keeps the rest", () => {
  assert.equal(
    untrustedText("a\x1b]52;c;ZXZpbA==\x07\rdone\u009b2J\u202eb\\"),
    "a\\x1b]52;c;ZXZpbA==\\x07\\x0ddone\\x9b2J\\u202eb\\",
  );
  assert.equal(
    untrustedText("ünïcödé 名前 sha256:ab"),
    "ünïcödé 名前 sha256:ab",
  );
  assert.equal(untrustedText("tab\tnew\nline"), "tab\\x09new\\x0aline");
  // The CLI's lines are not cut.
  const long = "x".repeat(500);
  assert.equal(untrustedText(long, Infinity), long);
});

test("cli prints a registry's error message with its control characters escaped", async () => {
  const cleanup = new Cleanup();
  try {
    const hostile = "\x1b]52;c;ZXZpbA==\x07\r\x1b[2Kdone\u009b";
    const registry = await startFakeRegistry(cleanup, {
      repository: "t/evil",
      manifests: {},
      blobs: {},
      answer: (request) =>
        request.path.includes("/manifests/")
          ? {
            status: 404,
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              errors: [{ code: "MANIFEST_UNKNOWN", message: hostile }],
            }),
          }
          : undefined,
    });
    const result = await run([`${registry.host}/t/evil:v1`]);
    assert.equal(result.code, 1);
    assert.doesNotMatch(result.stderr.slice(0, -1), CONTROLS);
    assert.ok(result.stderr.endsWith("\n"));
    assert.ok(
      result.stderr.includes("\\x1b]52;c;ZXZpbA==\\x07\\x0d\\x1b[2Kdone"),
      result.stderr,
    );
  } finally {
    await cleanup.close();
  }
});

test("cli prints a docker archive's tag with its control characters escaped", async () => {
  const dir = await mkdtemp(`${tmpdir()}/cli-`);
  try {
    const tar = await layerTar({ "a.txt": "a" });
    const parts = makeParts({ layers: [tar] });
    const layer = parts.manifest.layers[0].digest.slice(7);
    const config = parts.manifest.config.digest.slice(7);
    const repoTag = "evil\x1b]52;c;ZXZpbA==\x07/app:v1";
    const archive = await packTar([
      {
        header: { name: "manifest.json", size: 0 },
        body: JSON.stringify([{
          Config: `${config}.json`,
          RepoTags: [repoTag],
          Layers: [`${layer}/layer.tar`],
        }]),
      },
      { header: { name: `${config}.json`, size: 0 }, body: parts.config },
      { header: { name: `${layer}/layer.tar`, size: 0 }, body: tar },
    ].map((entry) => ({
      ...entry,
      header: {
        ...entry.header,
        size: typeof entry.body === "string"
          ? new TextEncoder().encode(entry.body).byteLength
          : entry.body.byteLength,
      },
    })));
    await writeFile(`${dir}/evil.tar`, archive);
    const result = await run([
      "-o",
      `${dir}/out.tar`,
      `docker-archive:${dir}/evil.tar`,
    ]);
    assert.equal(result.code, 1);
    assert.doesNotMatch(result.stderr.slice(0, -1), CONTROLS);
    assert.ok(result.stderr.includes("evil\\x1b]52;c;ZXZpbA==\\x07/app:v1"));
    assert.deepEqual(await readdir(dir), ["evil.tar"]);
  } finally {
    await rm(dir, { recursive: true });
  }
});

interface CliExit {
  code: number | null;
  signal: string | null;
  stderr: string;
}

interface CliChild {
  kill(signal: "SIGINT" | "SIGTERM"): void;
  exited: Promise<CliExit>;
}

/** The part of Deno's API `spawnCli` uses. */
interface DenoCommand {
  Command: new (cmd: string, options: {
    args: string[];
    cwd: string;
    env: Record<string, string>;
    stdin: "null";
    stdout: "null";
    stderr: "piped";
  }) => {
    spawn(): {
      kill(signal: string): void;
      output(): Promise<
        { code: number; signal: string | null; stderr: Uint8Array }
      >;
    };
  };
}

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * The CLI as a child process to send signals to. On Deno through
 * `Deno.Command`: Deno's node:child_process reports a child it sent a signal
 * to as killed by it, whatever its real exit status.
 */
function spawnCli(args: string[]): CliChild {
  const [cmd, ...pre] = runtimeCommand();
  const env = {
    ...process.env,
    DOCKER_CONFIG: "/nonexistent",
  } as Record<string, string>;
  const deno = (globalThis as { Deno?: DenoCommand }).Deno;
  if (deno) {
    const child = new deno.Command(cmd, {
      args: [...pre, ...args],
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    return {
      kill: (signal) => child.kill(signal),
      exited: child.output().then((output) => ({
        code: output.signal === null ? output.code : null,
        signal: output.signal,
        stderr: new TextDecoder().decode(output.stderr),
      })),
    };
  }
  const child = spawn(cmd, [...pre, ...args], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (data) => stderr += data);
  return {
    kill: (signal) => child.kill(signal),
    exited: new Promise((resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal, stderr }))
    ),
  };
}

for (const [signal, status] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  test(
    `cli -o FILE removes its temporary file on ${signal} and exits ${status}`,
    {
      timeout: 60_000,
    },
    async () => {
      const cleanup = new Cleanup();
      try {
        // A registry whose layer blob stalls after its first bytes.
        const tar = await layerTar({ "a.txt": "x".repeat(100_000) });
        const parts = makeParts({ layers: [tar] });
        const layer = parts.manifest.layers[0].digest;
        const registry = await startFakeRegistry(cleanup, {
          ...imageContent("t/slow", "v1", parts),
          answer: (request) =>
            request.path.endsWith(`/blobs/${layer}`) && request.method === "GET"
              ? { body: tar, stallAfter: 4096 }
              : undefined,
        });
        const dir = await tempDir(cleanup, "cli");
        const child = spawnCli([
          "-o",
          `${dir}/out.tar`,
          `${registry.host}/t/slow:v1`,
        ]);
        // Wait for the temporary file and the stalled layer request.
        for (let i = 0;; i++) {
          const files = await readdir(dir);
          if (
            files.some((f) => /^out\.tar\.[0-9a-f]+\.tmp$/.test(f)) &&
            registry.requests.some((r) => r.path.endsWith(layer))
          ) break;
          assert.ok(i < 400, "no temporary file appeared");
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        child.kill(signal);
        const exit = await child.exited;
        assert.deepEqual([exit.code, exit.signal], [status, null], exit.stderr);
        assert.equal(exit.stderr, `docker-save: interrupted by ${signal}\n`);
        assert.deepEqual(await readdir(dir), []);
      } finally {
        await cleanup.close();
      }
    },
  );
}

// ------------------------------------------------------ against a registry

const USER = "alice";
const PASS = "s3cret";

registryTest(
  "cli pulls 127.0.0.1:PORT/oracle/basic:v1 with the same bytes as its OCI layout",
  async (cleanup) => {
    const registry = await startRegistry(cleanup);
    await pushLayout(layout, "basic", registry.url, "oracle/basic", "v1");
    const dir = await tempDir(cleanup, "cli");
    const ref = `${registry.host}/oracle/basic:v1`;
    const pulled = await run(["-q", "-o", `${dir}/pulled.tar`, ref]);
    assert.equal(pulled.stderr, "");
    assert.equal(pulled.code, 0);
    const local = await run([
      "-q",
      "-o",
      `${dir}/local.tar`,
      `oci:${layout}:basic=${ref}`,
    ]);
    assert.equal(local.code, 0);
    assert.ok(
      (await readFile(`${dir}/pulled.tar`)).equals(
        await readFile(`${dir}/local.tar`),
      ),
    );
    // Saved as the golden tag: the golden bytes, to stdout.
    const golden = await run([`docker://${ref}=oracle/basic:v1`]);
    assert.equal(golden.code, 0);
    assert.ok(Buffer.from(basic.expected).equals(golden.stdout));
    // Mixed with an oci: source; progress lines name each image.
    const mixed = await run([
      "-o",
      `${dir}/mixed.tar`,
      `oci:${layout}:basic=local/basic:v1`,
      `${ref}=pulled/basic:v1`,
    ]);
    assert.equal(mixed.code, 0, mixed.stderr);
    // Both tags, but each shared layer read (and shown) once.
    const tar = await readFile(`${dir}/mixed.tar`);
    assert.ok(
      tar.includes("local/basic:v1") && tar.includes("pulled/basic:v1"),
    );
    assert.equal(mixed.stderr.trimEnd().split("\n").length, 3, mixed.stderr);
    // A platform the image is not.
    const arm = await run([
      "--platform",
      "linux/arm64",
      "-o",
      `${dir}/arm.tar`,
      ref,
    ]);
    assert.equal(arm.code, 1);
    assert.equal(
      arm.stderr,
      `docker-save: Cannot choose platform linux/arm64 from "${ref}": it is a single linux/amd64 image\n`,
    );
    assert.deepEqual((await readdir(dir)).sort(), [
      "local.tar",
      "mixed.tar",
      "pulled.tar",
    ]);
  },
);

registryTest(
  "cli pulls with --creds from a basic-auth registry, and exits 1 without",
  async (cleanup) => {
    const registry = await startRegistry(cleanup, {
      htpasswd: { username: USER, password: PASS },
    });
    await pushLayout(layout, "basic", registry.url, "oracle/basic", "v1", {
      authorization: `Basic ${btoa(`${USER}:${PASS}`)}`,
    });
    const dir = await tempDir(cleanup, "cli");
    const ref = `${registry.host}/oracle/basic:v1`;
    const ok = await run([
      "-q",
      "--creds",
      `${USER}:${PASS}`,
      `${ref}=oracle/basic:v1`,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Buffer.from(basic.expected).equals(ok.stdout));
    const denied = await run(["-o", `${dir}/out.tar`, ref]);
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      new RegExp(
        `^docker-save: Cannot pull manifest of "${ref}": ${registry.host} requires credentials`,
      ),
    );
    assert.equal(denied.stderr.trimEnd().split("\n").length, 1);
    assert.deepEqual(await readdir(dir), []);
  },
);

registryTest(
  "cli pulls from a token-auth registry with credentials from DOCKER_CONFIG",
  async (cleanup) => {
    const { tokens, registry } = await tokenRegistryWithBasic(
      cleanup,
      layout,
      USER,
      PASS,
    );
    const config = await tempDir(cleanup, "docker-config");
    await writeFile(
      join(config, "config.json"),
      JSON.stringify({
        auths: { [registry.host]: { auth: btoa(`${USER}:${PASS}`) } },
      }),
    );
    const ok = await run(
      ["-q", `${registry.host}/oracle/basic:v1=oracle/basic:v1`],
      { DOCKER_CONFIG: config },
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Buffer.from(basic.expected).equals(ok.stdout));
    assert.deepEqual(tokens.requests, [
      { scope: "repository:oracle/basic:pull", authorized: true },
    ]);
  },
);

registryTest(
  "cli exits 1 and leaves no file when a pulled blob is corrupt",
  async (cleanup) => {
    const registry = await startRegistry(cleanup);
    await pushLayout(layout, "basic", registry.url, "oracle/basic", "v1");
    const manifest = await (await fromOciLayout(layout, "basic")).manifest();
    const top = manifest.layers.at(-1)!;
    const proxy = await startProxy(
      cleanup,
      registry.url,
      (request) =>
        request.path.endsWith(top.digest) && !request.range
          ? { corruptAt: top.size - 9 }
          : undefined,
    );
    const dir = await tempDir(cleanup, "cli");
    const result = await run([
      "-o",
      `${dir}/out.tar`,
      `${proxy.host}/oracle/basic:v1`,
    ]);
    assert.equal(result.code, 1);
    const last = result.stderr.trimEnd().split("\n").at(-1)!;
    assert.match(last, new RegExp(`^docker-save: .*${top.digest}`));
    assert.deepEqual(await readdir(dir), []);
  },
);
