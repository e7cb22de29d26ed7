/**
 * Today's loaders read what `save()` writes: docker 28 with the containerd
 * image store, containerd 2.1 (`ctr`), skopeo 1.22, crane 0.20 and umoci,
 * from Debian sid in the chroot of `scripts/modern-loaders.sh` (see
 * tests/_kit/modern.ts), and a container runs from a saved image.
 *
 * - Every golden case, in every format and both layer modes, batched into one
 *   tarball per format and mode: `docker load` gives every tag, usable by
 *   `docker image inspect TAG`, with `RootFS.Layers` equal to the config's
 *   diff_ids; `ctr images import --all-platforms` names every tag as
 *   containerd normalises it; skopeo copies every image; umoci lists and
 *   unpacks the OCI layouts; `crane validate --tarball` passes each
 *   single-image docker tarball.
 * - A static busybox image, built here with `buildImage` (pushed to Debian's
 *   docker-registry and written as an OCI layout), and one made by docker 28
 *   itself (`docker import`, then `docker save`: docker ≥ 25's archive
 *   shape), saved by us from the registry, the layout and that archive in
 *   each format and layer mode: `docker run` prints what we asked.
 *   (Multi-platform images: tests/integration/modern_multi_platform.test.ts.)
 *
 * The loader checks run once, under node: the tarballs come from
 * tests/_kit/modern_save.ts run under node, deno and bun, and the first test
 * checks the three runtimes wrote the same bytes. Under deno and bun this
 * file is skipped. Locally it also skips when the chroot is not built (or
 * not root); with `CI` set it builds it and fails when it cannot.
 *
 * @module
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Image } from "../../src/model/image.ts";
import type { LayerMode, SaveFormat } from "../../src/save/save.ts";
import { buildImage } from "../../src/sources/memory.ts";
import { Cleanup } from "../_kit/cleanup.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { writeItemLayout } from "../_kit/layout.ts";
import {
  acquireModern,
  busyboxLayer,
  forget,
  inModern,
  loaderSkip as skip,
  MODERN_ROOT,
  type ModernTemp,
  modernTemp,
  normalised,
  saveOnEveryRuntime,
} from "../_kit/modern.ts";
import type { SaveJob, SaveSource } from "../_kit/modern_save.ts";
import { type CommandError, run } from "../_kit/processes.ts";
import { pushImage, startRegistry } from "../_kit/registry.ts";
import { sha256Hex } from "../_kit/digest.ts";
import { MODERN_TIMEOUT } from "../_kit/time.ts";

const FORMATS: SaveFormat[] = ["docker", "docker+oci", "oci"];
const LAYER_MODES: LayerMode[] = ["uncompressed", "compressed"];
const OCI_FORMATS = new Set<SaveFormat>(["docker+oci", "oci"]);
const DOCKER_FORMATS = new Set<SaveFormat>(["docker", "docker+oci"]);
/** containerd namespace for `ctr images import` (docker's is `moby`). */
const CTR_NAMESPACE = "docker-save-tests";
/** The image docker 28 makes with `docker import`. */
const DOCKER28_TAG = "docker-save/docker28-import:v1";

async function diffIdsOf(image: Image): Promise<string[]> {
  const config = JSON.parse(new TextDecoder().decode(await image.rawConfig()));
  return config.rootfs.diff_ids;
}

// --- fixtures -------------------------------------------------------------

const goldenTags: [string, Image][] = [];
for (const golden of goldenCases()) {
  goldenTags.push(...await goldenEntries(golden));
}
// Cases with one tag: `crane validate --tarball` takes one image per file.
const singleCases = goldenCases().filter((golden) => golden.save.length === 1);

/** The three sources of the busybox images that run. */
const RUN_SOURCES = ["registry", "layout", "docker28"] as const;
const runTag = (
  source: string,
  format: SaveFormat,
  layers: LayerMode,
) => `docker-save/run-${source}:${format.replace("+", "-")}-${layers}`;

let temp: ModernTemp;
let outputs = "";
const cleanup = new Cleanup();

function jobs(registryHost: string): SaveJob[] {
  const list: SaveJob[] = [];
  const golden = goldenCases().flatMap((c) =>
    c.save.map(({ ref, tag }) => ({
      tag,
      source: { kind: "oci-layout", dir: `${c.dir}/oci`, ref } as SaveSource,
    }))
  );
  const sources: Record<(typeof RUN_SOURCES)[number], SaveSource> = {
    registry: {
      kind: "registry",
      reference: `${registryHost}/docker-save/busybox:v1`,
    },
    layout: {
      kind: "oci-layout",
      dir: join(temp.host, "layout"),
      ref: "busybox",
    },
    docker28: { kind: "docker-archive", path: join(temp.host, "docker28.tar") },
  };
  for (const format of FORMATS) {
    for (const layers of LAYER_MODES) {
      list.push({
        name: `golden-${format}-${layers}`,
        format,
        layers,
        entries: golden,
      });
      list.push({
        name: `run-${format}-${layers}`,
        format,
        layers,
        entries: RUN_SOURCES.map((source) => ({
          tag: runTag(source, format, layers),
          source: sources[source],
        })),
      });
      if (!DOCKER_FORMATS.has(format)) continue;
      for (const c of singleCases) {
        list.push({
          name: `single-${c.name}-${format}-${layers}`,
          format,
          layers,
          entries: [{
            tag: c.save[0].tag,
            source: {
              kind: "oci-layout",
              dir: `${c.dir}/oci`,
              ref: c.save[0].ref,
            },
          }],
        });
      }
    }
  }
  return list;
}

let jobList: SaveJob[] = [];
/** Per job, the sha256 of the tarball node, deno and bun wrote. */
let digests = new Map<string, string[]>();

before(async () => {
  if (skip) return;
  cleanup.add(await acquireModern());
  temp = await modernTemp("loaders");
  cleanup.add(temp.dispose);
  const registry = await startRegistry(cleanup);

  // Ours: a static busybox layer, gzip, pushed and written as a layout.
  const layer = await busyboxLayer();
  const busybox = await buildImage({ layers: [layer], compression: "gzip" });
  await pushImage(registry.url, "docker-save/busybox", "v1", busybox);
  await writeItemLayout(join(temp.host, "layout"), "busybox", busybox);
  // docker 28's: imported from the same layer, saved by docker itself.
  await writeFile(join(temp.host, "busybox-layer.tar"), layer);
  await inModern([
    "docker",
    "import",
    `${temp.inside}/busybox-layer.tar`,
    DOCKER28_TAG,
  ]);
  await inModern([
    "docker",
    "save",
    "-o",
    `${temp.inside}/docker28.tar`,
    DOCKER28_TAG,
  ]);
  await forget([DOCKER28_TAG]);

  jobList = jobs(registry.host);
  ({ outputs, digests } = await saveOnEveryRuntime(jobList, temp.host));
}, { timeout: MODERN_TIMEOUT });

after(() => cleanup.close(), { timeout: 120_000 });

/** The path of a job's tarball as the tools in the chroot see it. */
const inside = (name: string) =>
  `${outputs.slice(MODERN_ROOT.length)}/${name}.tar`;

// --- the bytes are the runtimes' common output ------------------------------

test(
  "node, deno and bun write the same bytes for every tarball the loaders read",
  { skip, timeout: MODERN_TIMEOUT },
  () => {
    assert.ok(jobList.length > 0);
    for (const job of jobList) {
      const written = digests.get(job.name)!;
      assert.equal(new Set(written).size, 1, `${job.name}: ${written}`);
    }
  },
);

// --- every golden case, every format and layer mode -------------------------

for (const format of FORMATS) {
  for (const layers of LAYER_MODES) {
    const name = `golden-${format}-${layers}`;
    const what =
      `the ${format} tarball with ${layers} layers of every golden case`;

    test(
      `docker 28 (containerd store) loads ${what}; each tag inspects with the config's diff_ids`,
      { skip, timeout: MODERN_TIMEOUT },
      async () => {
        const tags = goldenTags.map(([tag]) => tag);
        try {
          const loaded = await inModern(["docker", "load", "-i", inside(name)]);
          for (const [tag, image] of goldenTags) {
            assert.ok(
              loaded.includes(`Loaded image: ${tag}\n`),
              `"${tag}" not in: ${loaded}`,
            );
            const layersJson = await inModern([
              "docker",
              "image",
              "inspect",
              tag,
              "--format",
              "{{json .RootFS.Layers}}",
            ]);
            assert.deepEqual(
              JSON.parse(layersJson),
              await diffIdsOf(image),
              tag,
            );
          }
        } finally {
          await forget(tags);
        }
      },
    );

    test(
      `ctr images import --all-platforms names every tag of ${what} as containerd normalises it`,
      { skip, timeout: MODERN_TIMEOUT },
      async () => {
        const tags = goldenTags.map(([tag]) => tag);
        try {
          await inModern([
            "ctr",
            "-n",
            CTR_NAMESPACE,
            "images",
            "import",
            "--all-platforms",
            inside(name),
          ]);
          const names =
            (await inModern(["ctr", "-n", CTR_NAMESPACE, "images", "ls", "-q"]))
              .trim().split("\n").sort();
          assert.deepEqual(names, [...new Set(tags.map(normalised))].sort());
        } finally {
          await forget(tags, CTR_NAMESPACE);
        }
      },
    );

    test(
      `skopeo 1.22 copies every image of ${what}`,
      { skip, timeout: MODERN_TIMEOUT },
      async () => {
        const transports = [
          ...(DOCKER_FORMATS.has(format) ? ["docker-archive"] : []),
          ...(OCI_FORMATS.has(format) ? ["oci-archive"] : []),
        ];
        await mkdir(join(temp.host, `skopeo-${name}`));
        for (const [i, [tag, image]] of goldenTags.entries()) {
          for (const transport of transports) {
            const dir = `${i}-${transport}`;
            await inModern([
              "skopeo",
              "--insecure-policy",
              "copy",
              "--quiet",
              `${transport}:${inside(name)}:${tag}`,
              `dir:${temp.inside}/skopeo-${name}/${dir}`,
            ]);
            // What skopeo wrote: the config we saved, and blobs whose names
            // are their sha256 (re-hashed here).
            const out = join(temp.host, `skopeo-${name}`, dir);
            const manifest = JSON.parse(
              await readFile(join(out, "manifest.json"), "utf8"),
            );
            assert.equal(
              manifest.config.digest,
              (await image.manifest()).config.digest,
            );
            assert.equal(
              manifest.layers.length,
              (await diffIdsOf(image)).length,
            );
            for (const file of await readdir(out)) {
              if (!/^[0-9a-f]{64}$/.test(file)) continue;
              assert.equal(
                sha256Hex(new Uint8Array(await readFile(join(out, file)))),
                file,
              );
            }
          }
        }
      },
    );

    if (OCI_FORMATS.has(format)) {
      test(
        `umoci lists and unpacks every image of ${what}`,
        { skip, timeout: MODERN_TIMEOUT },
        async () => {
          const layout = `${temp.inside}/umoci-${name}`;
          await mkdir(`${MODERN_ROOT}${layout}`);
          await run("tar", [
            "-C",
            `${MODERN_ROOT}${layout}`,
            "-xf",
            `${outputs}/${name}.tar`,
          ]);
          const listed = (await inModern(["umoci", "ls", "--layout", layout]))
            .trim().split("\n").sort();
          assert.deepEqual(listed, goldenTags.map(([tag]) => tag).sort());
          for (const [i, [tag]] of goldenTags.entries()) {
            await inModern([
              "umoci",
              "raw",
              "unpack",
              "--image",
              `${layout}:${tag}`,
              `${layout}-rootfs-${i}`,
            ]);
          }
        },
      );
    }

    if (DOCKER_FORMATS.has(format)) {
      for (const golden of singleCases) {
        const single = `single-${golden.name}-${format}-${layers}`;
        // The reference's own form of a foreign layer in an uncompressed
        // tarball: `LayerSources` keeps the gzip blob's descriptor while
        // layer.tar is the plain tar. go-containerregistry then looks for a
        // blob it cannot find; our output is the reference's, so crane
        // refuses both alike.
        const refused = golden.name === "foreign" && layers === "uncompressed";
        test(
          refused
            ? `crane validate --tarball refuses the ${format} tarball with ${layers} layers of "foreign" as it refuses the reference's`
            : `crane validate --tarball passes the ${format} tarball with ${layers} layers of "${golden.name}"`,
          { skip, timeout: MODERN_TIMEOUT },
          async () => {
            const validate = (path: string) =>
              inModern(["crane", "validate", "--tarball", path]);
            if (!refused) {
              assert.match(await validate(inside(single)), /^PASS: /);
              return;
            }
            const reference = `${temp.inside}/reference-foreign.tar`;
            await writeFile(`${MODERN_ROOT}${reference}`, golden.expected);
            for (const path of [inside(single), reference]) {
              const error = await validate(path).then(
                () => assert.fail(`crane passed ${path}`),
                (error: CommandError) => error,
              );
              assert.match(
                error.stdout + error.stderr,
                /validating layers: unknown blob sha256:[0-9a-f]{64}/,
              );
            }
          },
        );
      }
    }

    test(
      `docker 28 runs busybox saved as ${format} with ${layers} layers from a registry, an OCI layout and docker 28's own archive`,
      { skip, timeout: MODERN_TIMEOUT },
      async () => {
        const tags = RUN_SOURCES.map((source) =>
          runTag(source, format, layers)
        );
        try {
          const loaded = await inModern([
            "docker",
            "load",
            "-i",
            inside(`run-${format}-${layers}`),
          ]);
          for (const source of RUN_SOURCES) {
            const tag = runTag(source, format, layers);
            assert.ok(loaded.includes(`Loaded image: ${tag}\n`), loaded);
            const greeting =
              `hello from ${source}, saved as ${format} with ${layers} layers`;
            const printed = await inModern([
              "docker",
              "run",
              "--rm",
              "--network",
              "none",
              "--pull",
              "never",
              tag,
              "/bin/busybox",
              "echo",
              greeting,
            ]);
            assert.equal(printed, `${greeting}\n`);
          }
        } finally {
          await forget(tags);
        }
      },
    );
  }
}
