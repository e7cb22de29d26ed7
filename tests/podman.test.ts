/**
 * A second real loader: Debian's podman (vfs storage, as root, in a private
 * root under /tmp) loads every format `save()` writes, with the right tags,
 * image id and layer count. Skipped without podman (or when not root),
 * unless `CI` is set.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type LayerMode, save, type SaveFormat } from "../src/save.ts";
import { goldenCases, goldenEntries, readAll } from "./_golden.ts";

const TIMEOUT = 180_000;
const installed = spawnSync("podman", ["--version"], { stdio: "ignore" })
      .status === 0 && process.getuid?.() === 0;
const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const skip = installed || ci ? false : "podman not installed, or not root";

function podman(root: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "podman",
      [
        "--root",
        join(root, "root"),
        "--runroot",
        join(root, "run"),
        "--storage-driver",
        "vfs",
        "--events-backend",
        "none",
        "--cgroup-manager",
        "cgroupfs",
        ...args,
      ],
      { maxBuffer: 16 << 20, timeout: TIMEOUT },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(`podman ${args.join(" ")}: ${error.message}\n${stderr}`),
          );
        } else resolve(String(stdout));
      },
    );
  });
}

const byName = (name: string) => goldenCases().find((c) => c.name === name)!;
// podman 4.3 loads an oci-archive only when its index has one entry ("more
// than one image in oci, choose an image"), so the two-tag case goes through
// the formats that carry manifest.json.
const CASES: [SaveFormat, string][] = [
  ["docker", "same-image-two-tags"],
  ["docker+oci", "same-image-two-tags"],
  ["oci", "basic"],
];

for (const [format, name] of CASES) {
  const two = byName(name);
  for (const layers of ["uncompressed", "compressed"] as LayerMode[]) {
    test(
      `podman loads the ${format} tarball with ${layers} layers of "${two.name}"`,
      { skip, timeout: TIMEOUT },
      async () => {
        assert.ok(installed, "podman is missing (or not root) and CI is set");
        const root = await mkdtemp(join(tmpdir(), "docker-save-podman-"));
        try {
          const entries = await goldenEntries(two);
          const archive = join(root, "out.tar");
          await writeFile(
            archive,
            await readAll(save(entries, { format, layers })),
          );
          await podman(root, ["load", "-q", "-i", archive]);
          const manifest = await entries[0][1].manifest();
          const inspect = JSON.parse(
            await podman(root, [
              "image",
              "inspect",
              manifest.config.digest.slice(7),
            ]),
          );
          assert.equal(inspect.length, 1);
          assert.equal(`sha256:${inspect[0].Id}`, manifest.config.digest);
          assert.equal(inspect[0].RootFS.Layers.length, manifest.layers.length);
          // The oci layout names each tag; docker's manifest.json too. podman
          // qualifies short names (localhost/ or docker.io/).
          const names: string[] = inspect[0].RepoTags;
          for (const [tag] of entries) {
            assert.ok(
              names.some((name) => name.endsWith(`/${tag}`)),
              `${tag} not among ${names.join(", ")}`,
            );
          }
        } finally {
          await rm(root, { recursive: true, force: true });
        }
      },
    );
  }
}
