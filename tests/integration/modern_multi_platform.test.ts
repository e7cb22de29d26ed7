/**
 * Multi-platform images (issue 13) in today's loaders: docker 28 with the
 * containerd image store, containerd 2.1 (`ctr`) and skopeo 1.22, in the
 * chroot of `scripts/modern-loaders.sh` (see tests/_kit/modern.ts).
 *
 * The fixture, built here: an index over linux/amd64 (a static busybox
 * layer, so it runs), linux/arm64/v8 and linux/arm/v7 images (each config
 * says its platform; each has a layer with `/etc/platform`) and a
 * buildx-style attestation of the amd64 one, gzip layers. It is read from
 * an OCI layout, an OCI archive and Debian's docker-registry, saved by the
 * library (under node, deno and bun: the same bytes) and by the CLI (the
 * library's bytes) as `oci` and `docker+oci`, every platform (`all`, both
 * layer modes) or a list (`linux/amd64,linux/arm64`). Then:
 *
 * - `docker load --platform linux/arm64` loads that platform only;
 * - `docker load` gives each tag the saved index (the source's digest with
 *   `all` and compressed layers), `docker image inspect --platform P TAG`
 *   answers for every saved platform with that child's diff_ids, and not for
 *   a platform left out; `docker run` runs the amd64 child;
 * - `ctr images import --all-platforms` lists every saved platform for each
 *   tag, all of their content present (`ctr images check`);
 * - `skopeo copy --all oci-archive:OUT:TAG oci:DIR` writes the index we
 *   saved, digest kept;
 * - docker 28's own `docker save` of an image loaded for one platform writes
 *   the whole index with only that platform's blobs; from that archive
 *   `--platform all` fails naming the platforms it lacks, and `--platform
 *   available` saves what it holds, which docker 28 loads and runs.
 *
 * docker 20.10 and podman 4.3 reading `manifest.json` of `docker+oci`
 * output: tests/integration/docker_load.test.ts and tests/integration/podman.test.ts.
 *
 * @module
 */

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Image } from "../../src/model/image.ts";
import { buildIndex } from "../../src/model/image_index.ts";
import type { LayerMode, SaveFormat } from "../../src/save/save.ts";
import { buildImage } from "../../src/sources/memory.ts";
import { Cleanup } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
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
  untilCollected,
} from "../_kit/modern.ts";
import type { SaveJob, SaveSource } from "../_kit/modern_save.ts";
import { attestationFor } from "../_kit/multi_platform.ts";
import { type CommandError, run, runCli } from "../_kit/processes.ts";
import { pushImage, pushManifest, startRegistry } from "../_kit/registry.ts";
import { layerTar, readTar } from "../_kit/tar.ts";
import { MODERN_TIMEOUT } from "../_kit/time.ts";

/** containerd namespace for `ctr images import` (docker's is `moby`). */
const CTR_NAMESPACE = "docker-save-multi-platform";

const AMD64 = "linux/amd64";
const ARM64 = "linux/arm64/v8";
const ARMV7 = "linux/arm/v7";
/** The fixture's platforms, as its index entries name them. */
const PLATFORMS = [AMD64, ARM64, ARMV7];
/** What `platforms` lists for the subset jobs, and what they keep. */
const LIST = ["linux/amd64", "linux/arm64"];
const LISTED = [AMD64, ARM64];
/** What docker reports for a platform an image does not hold. */
const NOT_PROVIDED = /does not provide the specified platform/;

const FORMATS: SaveFormat[] = ["oci", "docker+oci"];
const LAYER_MODES: LayerMode[] = ["compressed", "uncompressed"];
const SOURCES = ["layout", "archive", "registry"] as const;
type Source = (typeof SOURCES)[number];

const label = (format: SaveFormat, layers: LayerMode) =>
  `${format.replace("+", "-")}-${layers}`;

// --- the fixture ------------------------------------------------------------

/** `os/arch[/variant]` as config and index entries spell it. */
function platformOf(text: string) {
  const [os, architecture, variant] = text.split("/");
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** An image whose config says `platform`, with `/etc/platform` on top. */
async function platformImage(
  platform: string,
  below: Uint8Array[],
): Promise<Image> {
  return await buildImage({
    layers: [...below, await layerTar({ "etc/platform": `${platform}\n` })],
    config: platformOf(platform),
    compression: "gzip",
  });
}

async function multiPlatformApp() {
  const images = new Map<string, Image>([
    [AMD64, await platformImage(AMD64, [await busyboxLayer()])],
    [ARM64, await platformImage(ARM64, [])],
    [ARMV7, await platformImage(ARMV7, [])],
  ]);
  const amd64 = digestOf(await images.get(AMD64)!.rawManifest());
  const attestation = attestationFor(amd64);
  const index = await buildIndex([
    ...[...images].map(([platform, image]) => ({
      image,
      platform: platformOf(platform),
    })),
    {
      image: attestation,
      platform: { os: "unknown", architecture: "unknown" },
      annotations: {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd64,
      },
    },
  ]);
  return { images, attestation, index };
}

let app: Awaited<ReturnType<typeof multiPlatformApp>>;
/** The digest of the fixture's index, as every source holds it. */
let sourceDigest = "";
/** Per platform, the child's manifest digest and config diff_ids. */
const children = new Map<string, { manifest: string; diffIds: string[] }>();

// --- the saves ----------------------------------------------------------------

let temp: ModernTemp;
let registryHost = "";
let outputs = "";
let digests = new Map<string, string[]>();
const cleanup = new Cleanup();

const tagOf = (
  source: Source | "list",
  format: SaveFormat,
  layers: LayerMode,
) => `docker-save/mp-${source}:${label(format, layers)}`;

/** A tarball to save, and what it must hold. */
interface Spec {
  name: string;
  format: SaveFormat;
  layers: LayerMode;
  /** Its tags, each from one source. */
  tags: [tag: string, source: Source][];
  selection: "all" | string[];
  /** The platforms saved. */
  platforms: string[];
  /** Whether the index is the source's, byte for byte. */
  sourceIndex: boolean;
}

const SPECS: Spec[] = FORMATS.flatMap((format) => [
  ...LAYER_MODES.map((layers): Spec => ({
    name: `all-${label(format, layers)}`,
    format,
    layers,
    tags: SOURCES.map((source) => [tagOf(source, format, layers), source]),
    selection: "all",
    platforms: PLATFORMS,
    sourceIndex: layers === "compressed",
  })),
  {
    name: `list-${label(format, "compressed")}`,
    format,
    layers: "compressed",
    tags: [[tagOf("list", format, "compressed"), "registry"]],
    selection: LIST,
    platforms: LISTED,
    sourceIndex: false,
  },
]);
const spec = (name: string) => SPECS.find((spec) => spec.name === name)!;

/** Where the generator reads a source. */
function sourceOf(source: Source): SaveSource {
  switch (source) {
    case "layout":
      return { kind: "oci-layout", dir: join(temp.host, "layout"), ref: "app" };
    case "archive":
      return {
        kind: "oci-archive",
        path: join(temp.host, "app-oci.tar"),
        ref: "app",
      };
    case "registry":
      return {
        kind: "registry",
        reference: `${registryHost}/docker-save/mp-app:v1`,
      };
  }
}

const jobOf = (spec: Spec): SaveJob => ({
  name: spec.name,
  format: spec.format,
  layers: spec.layers,
  entries: spec.tags.map(([tag, source]) => ({
    tag,
    source: { ...sourceOf(source), platforms: spec.selection },
  })),
});

before(async () => {
  if (skip) return;
  cleanup.add(await acquireModern());
  temp = await modernTemp("multi-platform");
  cleanup.add(temp.dispose);
  const registry = await startRegistry(cleanup);
  registryHost = registry.host;

  app = await multiPlatformApp();
  sourceDigest = digestOf(await app.index.rawIndex());
  for (const [platform, image] of app.images) {
    const config = JSON.parse(
      new TextDecoder().decode(await image.rawConfig()),
    );
    children.set(platform, {
      manifest: digestOf(await image.rawManifest()),
      diffIds: config.rootfs.diff_ids,
    });
  }
  // The three sources: a layout, a tar of it, the registry.
  const layout = join(temp.host, "layout");
  await writeItemLayout(layout, "app", app.index);
  await run("tar", [
    "-C",
    layout,
    "-cf",
    join(temp.host, "app-oci.tar"),
    "oci-layout",
    "index.json",
    "blobs",
  ]);
  for (const image of [...app.images.values(), app.attestation]) {
    const digest = digestOf(await image.rawManifest());
    await pushImage(registry.url, "docker-save/mp-app", digest, image);
  }
  await pushManifest(
    registry.url,
    "docker-save/mp-app",
    "v1",
    await app.index.rawIndex(),
    "application/vnd.oci.image.index.v1+json",
  );

  ({ outputs, digests } = await saveOnEveryRuntime(
    SPECS.map(jobOf),
    temp.host,
  ));
}, { timeout: MODERN_TIMEOUT });

after(() => cleanup.close(), { timeout: 120_000 });

/** A job's tarball as the tools in the chroot see it. */
const inside = (name: string) =>
  `${outputs.slice(MODERN_ROOT.length)}/${name}.tar`;

/**
 * What a tarball holds: each tag's index digest (by its
 * `org.opencontainers.image.ref.name`), and the digests of its blobs.
 */
async function tarballIndex(path: string) {
  const members = await readTar(new Uint8Array(await readFile(path)));
  const index = JSON.parse(
    new TextDecoder().decode(
      members.find((member) => member.name === "index.json")!.data,
    ),
  );
  const indexes = new Map<string, string>(
    index.manifests.map((
      entry: { digest: string; annotations: Record<string, string> },
    ) => [
      entry.annotations["org.opencontainers.image.ref.name"],
      entry.digest,
    ]),
  );
  const blobs = new Set(
    members.filter((member) =>
      /^blobs\/sha256\/[0-9a-f]{64}$/.test(member.name)
    )
      .map((member) => `sha256:${member.name.slice(13)}`),
  );
  return { index: index.manifests[0], indexes, blobs };
}

/** `docker image inspect --platform P TAG`'s layers, or its error. */
function layersOf(tag: string, platform: string): Promise<string[]> {
  return inModern([
    "docker",
    "image",
    "inspect",
    "--platform",
    platform,
    tag,
    "--format",
    "{{json .RootFS.Layers}}",
  ]).then((text) => JSON.parse(text));
}

/** Asserts docker holds exactly `held` of the fixture's platforms for `tag`. */
async function assertPlatforms(tag: string, held: readonly string[]) {
  for (const platform of PLATFORMS) {
    if (held.includes(platform)) {
      assert.deepEqual(
        await layersOf(tag, platform),
        children.get(platform)!.diffIds,
        `${tag} ${platform}`,
      );
    } else {
      await assert.rejects(
        layersOf(tag, platform),
        (error: CommandError) => NOT_PROVIDED.test(error.stderr),
        `${tag} ${platform} should be absent`,
      );
    }
  }
}

/** What the amd64 child prints: its `/etc/platform`. */
function runAmd64(tag: string): Promise<string> {
  return inModern([
    "docker",
    "run",
    "--rm",
    "--network",
    "none",
    "--pull",
    "never",
    tag,
    "/bin/busybox",
    "cat",
    "/etc/platform",
  ]);
}

// --- the bytes ----------------------------------------------------------------

test(
  "node, deno and bun write the same bytes for every multi-platform tarball",
  { skip, timeout: MODERN_TIMEOUT },
  () => {
    assert.equal(digests.size, SPECS.length);
    for (const [name, written] of digests) {
      assert.equal(new Set(written).size, 1, `${name}: ${written}`);
    }
  },
);

test(
  "the CLI's --platform all and --platform LIST write the library's bytes",
  { skip, timeout: MODERN_TIMEOUT },
  async () => {
    // The SOURCE argument of each source, saved as `tag`.
    const cliSource = (tag: string, source: Source) =>
      ({
        layout: `oci:${temp.host}/layout:app=${tag}`,
        archive: `oci-archive:${temp.host}/app-oci.tar:app=${tag}`,
        registry: `${registryHost}/docker-save/mp-app:v1=${tag}`,
      })[source];
    for (const name of ["all-docker-oci-compressed", "list-oci-compressed"]) {
      const { format, layers, selection, tags } = spec(name);
      const out = join(temp.host, `cli-${name}.tar`);
      const cli = await runCli([
        "-q",
        "--platform",
        selection === "all" ? "all" : selection.join(","),
        "--format",
        format,
        "--layers",
        layers,
        "-o",
        out,
        ...tags.map(([tag, source]) => cliSource(tag, source)),
      ]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.ok(
        (await readFile(out)).equals(
          await readFile(join(outputs, `${name}.tar`)),
        ),
        `${name}: the CLI wrote other bytes`,
      );
    }
  },
);

// --- docker 28 ----------------------------------------------------------------

// First of the docker tests: the other platforms' blobs must not be held
// by an image loaded before.
test(
  "docker 28 load --platform linux/arm64 loads that platform only",
  { skip, timeout: MODERN_TIMEOUT },
  async () => {
    const { name, tags } = spec("all-oci-compressed");
    try {
      await inModern([
        "docker",
        "load",
        "--platform",
        "linux/arm64",
        "-i",
        inside(name),
      ]);
      // The import writes every blob; containerd then drops the unused.
      await untilCollected(
        [AMD64, ARMV7].map((platform) => children.get(platform)!.manifest),
      );
      for (const [tag] of tags) await assertPlatforms(tag, [ARM64]);
    } finally {
      await forget(tags.map(([tag]) => tag));
    }
  },
);

for (
  const { name: job, selection, tags: tagged, platforms, sourceIndex } of SPECS
) {
  const described = `${
    selection === "all" ? "every platform" : selection.join(",")
  } (${job.slice(job.indexOf("-") + 1)})`;
  const tags = tagged.map(([tag]) => tag);

  test(
    `docker 28 loads ${described}: each tag inspects per platform with that child's layers, and runs`,
    { skip, timeout: MODERN_TIMEOUT },
    async () => {
      const saved = (await tarballIndex(join(outputs, `${job}.tar`))).indexes;
      try {
        const loaded = await inModern(["docker", "load", "-i", inside(job)]);
        for (const tag of tags) {
          assert.ok(loaded.includes(`Loaded image: ${tag}\n`), loaded);
          // The containerd store's image id is the index's digest.
          const id = (await inModern([
            "docker",
            "image",
            "inspect",
            tag,
            "--format",
            "{{.Id}}",
          ])).trim();
          assert.equal(id, saved.get(tag));
          if (sourceIndex) assert.equal(id, sourceDigest);
          await assertPlatforms(tag, platforms);
        }
        assert.equal(await runAmd64(tags[0]), `${AMD64}\n`);
      } finally {
        await forget(tags);
      }
    },
  );

  test(
    `ctr images import --all-platforms lists ${described} for each tag, all content present`,
    { skip, timeout: MODERN_TIMEOUT },
    async () => {
      const saved = await tarballIndex(join(outputs, `${job}.tar`));
      const ctr = (...args: string[]) =>
        inModern(["ctr", "-n", CTR_NAMESPACE, ...args]);
      try {
        await ctr("images", "import", "--all-platforms", inside(job));
        // REF TYPE DIGEST SIZE(2 words) PLATFORMS LABELS
        const listed = new Map(
          (await ctr("images", "ls")).trim().split("\n").slice(1).map(
            (line) => {
              const words = line.trim().split(/\s+/);
              return [words[0], { digest: words[2], platforms: words.at(-2) }];
            },
          ),
        );
        for (const tag of tags) {
          assert.deepEqual(listed.get(normalised(tag)), {
            digest: saved.indexes.get(tag),
            platforms: [...platforms].sort().join(","),
          });
        }
        // Every blob we wrote is in the content store: no platform's
        // content was skipped.
        const held = new Set((await ctr("content", "ls", "-q")).split("\n"));
        assert.deepEqual(
          [...saved.blobs].filter((digest) => !held.has(digest)),
          [],
        );
      } finally {
        await forget(tags, CTR_NAMESPACE);
      }
    },
  );

  test(
    `skopeo 1.22 copy --all takes ${described} with the index we saved, digest kept`,
    { skip, timeout: MODERN_TIMEOUT },
    async () => {
      const saved = (await tarballIndex(join(outputs, `${job}.tar`))).indexes;
      for (const [i, tag] of tags.entries()) {
        const dir = `${temp.inside}/skopeo-${job}-${i}`;
        await inModern([
          "skopeo",
          "--insecure-policy",
          "copy",
          "--all",
          "--preserve-digests",
          "--quiet",
          `oci-archive:${inside(job)}:${tag}`,
          `oci:${dir}`,
        ]);
        const host = `${MODERN_ROOT}${dir}`;
        const [entry] =
          JSON.parse(await readFile(join(host, "index.json"), "utf8"))
            .manifests;
        assert.equal(entry.digest, saved.get(tag));
        if (sourceIndex) assert.equal(entry.digest, sourceDigest);
        // Every blob skopeo wrote is named by its sha256; every saved
        // platform's manifest is there.
        const blobs = join(host, "blobs", "sha256");
        const names = await readdir(blobs);
        for (const name of names) {
          assert.equal(
            digestOf(new Uint8Array(await readFile(join(blobs, name)))),
            `sha256:${name}`,
          );
        }
        const index = JSON.parse(
          await readFile(join(blobs, entry.digest.slice(7)), "utf8"),
        );
        assert.equal(
          index.manifests.filter((m: { platform: { os: string } }) =>
            m.platform.os === "linux"
          ).length,
          platforms.length,
        );
        for (const child of index.manifests) {
          assert.ok(names.includes(child.digest.slice(7)), child.digest);
        }
      }
    },
  );
}

// --- docker 28's partial index ---------------------------------------------

test(
  "docker 28 saves an image loaded for one platform as its whole index with that platform's blobs; --platform all refuses it naming the rest, --platform available saves what it holds",
  { skip, timeout: MODERN_TIMEOUT },
  async () => {
    const { name, tags: tagged } = spec("all-oci-compressed");
    const tags = tagged.map(([tag]) => tag);
    const [tag] = tags;
    const partial = `${temp.inside}/docker28-partial.tar`;
    const others = [
      children.get(ARM64)!.manifest,
      children.get(ARMV7)!.manifest,
      digestOf(await app.attestation.rawManifest()),
    ];
    try {
      await inModern([
        "docker",
        "load",
        "--platform",
        "linux/amd64",
        "-i",
        inside(name),
      ]);
      await untilCollected(others);
      await inModern(["docker", "save", "-o", partial, tag]);
    } finally {
      await forget(tags);
    }
    // What docker 28 wrote: the source's index, only amd64's blobs.
    const written = await tarballIndex(`${MODERN_ROOT}${partial}`);
    assert.equal(written.indexes.size, 1);
    assert.equal(written.index.digest, sourceDigest);
    assert.equal(
      written.index.annotations["io.containerd.image.name"],
      normalised(tag),
    );
    assert.ok(written.blobs.has(sourceDigest));
    assert.ok(written.blobs.has(children.get(AMD64)!.manifest));
    assert.deepEqual(others.filter((blob) => written.blobs.has(blob)), []);

    const source = `docker-archive:${MODERN_ROOT}${partial}`;
    const refused = join(temp.host, "partial-all.tar");
    const all = await runCli([
      "-q",
      "--platform",
      "all",
      "--format",
      "docker+oci",
      "-o",
      refused,
      source,
    ]);
    assert.equal(all.code, 1);
    assert.match(
      all.stderr,
      /Cannot save every platform: the source does not hold linux\/arm64\/v8, linux\/arm\/v7, unknown\/unknown; save the platforms present with --platform available/,
    );
    assert.ok(!existsSync(refused));

    const available = `${temp.inside}/partial-available.tar`;
    const kept = await runCli([
      "-q",
      "--platform",
      "available",
      "--format",
      "docker+oci",
      "-o",
      `${MODERN_ROOT}${available}`,
      source,
    ]);
    assert.equal(kept.code, 0, kept.stderr);
    const saved = (await tarballIndex(`${MODERN_ROOT}${available}`)).indexes;
    assert.deepEqual([...saved.keys()], [tag]);
    assert.notEqual(saved.get(tag), sourceDigest);
    try {
      const loaded = await inModern(["docker", "load", "-i", available]);
      assert.ok(loaded.includes(`Loaded image: ${tag}\n`), loaded);
      await assertPlatforms(tag, [AMD64]);
      assert.equal(await runAmd64(tag), `${AMD64}\n`);
    } finally {
      await forget([tag]);
    }
  },
);
