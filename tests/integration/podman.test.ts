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
import { type LayerMode, save, type SaveFormat } from "../../src/save/save.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { fixture } from "../_kit/multi_platform.ts";
import { LOADER_TIMEOUT } from "../_kit/time.ts";

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
      { maxBuffer: 16 << 20, timeout: LOADER_TIMEOUT },
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
      { skip, timeout: LOADER_TIMEOUT },
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

// A multi-platform index saved as docker+oci, one tag. podman 4.3 reads
// manifest.json through `docker-archive:`, which names the default
// platform's image. `podman load` tries the OCI side first and, the index
// having one entry, takes the machine's platform from it (linux/amd64
// here) whatever manifest.json names.
for (const layers of ["uncompressed", "compressed"] as LayerMode[]) {
  test(
    `podman reads the manifest.json platform of the docker+oci tarball (${layers} layers) of a multi-platform index: linux/amd64 by default, linux/arm64 when asked`,
    { skip, timeout: LOADER_TIMEOUT },
    async () => {
      assert.ok(installed, "podman is missing (or not root) and CI is set");
      const root = await mkdtemp(join(tmpdir(), "docker-save-podman-"));
      try {
        const { amd64, arm64, index } = await fixture();
        const tag = "example.com/multi/app:v1";
        const saved = async (defaultPlatform: string) => {
          const archive = join(
            root,
            `${defaultPlatform.replace("/", "-")}.tar`,
          );
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
          return archive;
        };
        const id = async () =>
          `sha256:${
            (await podman(root, [
              "image",
              "inspect",
              tag,
              "--format",
              "{{.Id}}",
            ])).trim()
          }`;
        const configOf = async (image: typeof amd64) =>
          (await image.manifest()).config.digest;

        const byDefault = await saved("linux/amd64");
        await podman(root, ["pull", "-q", `docker-archive:${byDefault}`]);
        assert.equal(await id(), await configOf(amd64));
        await podman(root, ["rmi", "-a", "-f"]);
        await podman(root, ["load", "-q", "-i", byDefault]);
        assert.equal(await id(), await configOf(amd64));
        await podman(root, ["rmi", "-a", "-f"]);

        const arm = await saved("linux/arm64");
        await podman(root, ["pull", "-q", `docker-archive:${arm}`]);
        assert.equal(await id(), await configOf(arm64));
        await podman(root, ["rmi", "-a", "-f"]);
        // `podman load` reads index.json: the machine's platform.
        await podman(root, ["load", "-q", "-i", arm]);
        assert.equal(await id(), await configOf(amd64));
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  );
}
