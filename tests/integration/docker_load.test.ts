/**
 * The loader the format is named after: Debian's docker.io `dockerd`,
 * started by the test as root with vfs storage, no networking and its own
 * data and exec roots under /tmp, loads what `save()` writes (`docker` and
 * `docker+oci`, both layer modes) with the right tags, image id and layers.
 * Stopped by its PID. Skipped without dockerd or root, unless `CI` is set.
 *
 * @module
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  type ChildProcess,
  execFile,
  spawn,
  spawnSync,
} from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type LayerMode, save, type SaveFormat } from "../../src/save/save.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { fixture } from "../_kit/multi_platform.ts";
import { LOADER_TIMEOUT } from "../_kit/time.ts";

const installed = spawnSync("dockerd", ["--version"], { stdio: "ignore" })
      .status === 0 &&
  spawnSync("docker", ["--version"], { stdio: "ignore" }).status === 0 &&
  process.getuid?.() === 0;
const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const skip = installed || ci ? false : "dockerd not installed, or not root";

let root = "";
let daemon: ChildProcess | undefined;

function docker(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "docker",
      ["-H", `unix://${root}/docker.sock`, ...args],
      { maxBuffer: 16 << 20, timeout: LOADER_TIMEOUT },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(`docker ${args.join(" ")}: ${stderr || error.message}`),
          );
        } else resolve(String(stdout));
      },
    );
  });
}

before(async () => {
  if (skip) return;
  assert.ok(installed, "dockerd is missing (or not root) and CI is set");
  root = await mkdtemp(join(tmpdir(), "docker-save-dockerd-"));
  daemon = spawn("dockerd", [
    "--storage-driver",
    "vfs",
    "--iptables=false",
    "--ip-masq=false",
    "--bridge=none",
    "--data-root",
    join(root, "data"),
    "--exec-root",
    join(root, "exec"),
    "--pidfile",
    join(root, "docker.pid"),
    "--host",
    `unix://${root}/docker.sock`,
  ], { stdio: "ignore" });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await docker(["version", "--format", "{{.Server.Version}}"]);
      return;
    } catch (error) {
      if (Date.now() > deadline || daemon.exitCode !== null) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}, { timeout: 90_000 });

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((resolve) => daemon!.once("exit", resolve));
    daemon.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (daemon.exitCode === null) daemon.kill("SIGKILL");
  }
  if (root) await rm(root, { recursive: true, force: true });
}, { timeout: 60_000 });

const two = goldenCases().find((c) => c.name === "same-image-two-tags")!;
const foreign = goldenCases().find((c) => c.name === "foreign")!;

for (const golden of [two, foreign]) {
  for (const format of ["docker", "docker+oci"] as SaveFormat[]) {
    for (const layers of ["uncompressed", "compressed"] as LayerMode[]) {
      test(
        `docker load reads the ${format} tarball with ${layers} layers of "${golden.name}"`,
        { skip, timeout: LOADER_TIMEOUT },
        async () => {
          const entries = await goldenEntries(golden);
          const archive = join(root, "out.tar");
          await writeFile(
            archive,
            await readAll(save(entries, { format, layers })),
          );
          const loaded = await docker(["load", "-i", archive]);
          const manifest = await entries[0][1].manifest();
          for (const [tag] of entries) {
            assert.match(loaded, new RegExp(`Loaded image: ${tag}`));
            const [id, count] = (await docker([
              "image",
              "inspect",
              tag,
              "--format",
              "{{.Id}} {{len .RootFS.Layers}}",
            ])).trim().split(" ");
            assert.equal(id, manifest.config.digest);
            assert.equal(Number(count), manifest.layers.length);
          }
          await docker(["image", "rm", "-f", ...entries.map(([tag]) => tag)]);
        },
      );
    }
  }
}

// A multi-platform index saved as docker+oci: docker 20.10 reads only
// manifest.json, which names the default platform's image (linux/amd64, or
// `defaultPlatform`).
for (const defaultPlatform of ["linux/amd64", "linux/arm64"]) {
  for (const layers of ["uncompressed", "compressed"] as LayerMode[]) {
    test(
      `docker load reads the ${defaultPlatform} image manifest.json names in the docker+oci tarball (${layers} layers) of a multi-platform index`,
      { skip, timeout: LOADER_TIMEOUT },
      async () => {
        const { amd64, arm64, index } = await fixture();
        const expected = defaultPlatform === "linux/amd64" ? amd64 : arm64;
        const tag = "example.com/multi/app:v1";
        const archive = join(root, "multi.tar");
        await writeFile(
          archive,
          await readAll(
            save([[tag, index]], {
              format: "docker+oci",
              layers,
              defaultPlatform,
            }),
          ),
        );
        const loaded = await docker(["load", "-i", archive]);
        assert.match(loaded, new RegExp(`Loaded image: ${tag}`));
        const [id, diffIds] = (await docker([
          "image",
          "inspect",
          tag,
          "--format",
          "{{.Id}} {{json .RootFS.Layers}}",
        ])).trim().split(" ");
        assert.equal(id, (await expected.manifest()).config.digest);
        const config = JSON.parse(
          new TextDecoder().decode(await expected.rawConfig()),
        );
        assert.deepEqual(JSON.parse(diffIds), config.rootfs.diff_ids);
        await docker(["image", "rm", "-f", tag]);
      },
    );
  }
}
