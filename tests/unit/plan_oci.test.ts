/**
 * Stage 3's OCI planner (`src/save/plan_oci.ts`) on its own: converted items
 * in, the members of an `oci` / `docker+oci` tarball out, in order, each
 * blob once. Checked against what the test built: the manifests' and
 * indexes' own bytes and digests, the layer tars and their diff_ids.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  buildImage,
  buildIndex,
  type Image,
  type ImageIndex,
} from "../../mod.ts";
import {
  isDeferredEntry,
  isLayerEntry,
  LayerSizes,
  type PlannedEntry,
} from "../../src/save/entries.ts";
import { resolveOptions, type SaveOptions } from "../../src/save/options.ts";
import { planSave } from "../../src/save/pipeline.ts";
import { OciPlanner } from "../../src/save/plan_oci.ts";
import type { SaveItem } from "../../src/save/v1.ts";
import { digestOf, hexPart } from "../_kit/digest.ts";
import { layerTar } from "../_kit/tar.ts";

const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64" };
const decoder = new TextDecoder();

/** Stages 1–2 for `entries`: the items stage 3 is given. */
async function itemsOf(
  entries: [string, Image | ImageIndex][],
  options: SaveOptions,
): Promise<SaveItem[]> {
  return (await planSave(entries, resolveOptions(options))).images;
}

/** A member as planned, resolved enough to name and read it. */
interface Planned {
  name: string;
  body?: Uint8Array;
  layer?: string;
}

/** Each entry's name (deferred ones built with `sizes`), in order. */
async function resolve(
  entries: Iterable<PlannedEntry>,
  sizes = new LayerSizes(),
): Promise<Planned[]> {
  const planned: Planned[] = [];
  for (const entry of entries) {
    if (isDeferredEntry(entry)) {
      const built = await entry.build(sizes);
      if (built) {
        planned.push({ name: built.name, body: built.body as Uint8Array });
      }
    } else if (isLayerEntry(entry)) {
      planned.push({ name: entry.name, layer: entry.layer.digest });
    } else planned.push({ name: entry.name, body: entry.body as Uint8Array });
  }
  return planned;
}

const blob = (digest: string) => `blobs/sha256/${hexPart(digest)}`;
const json = (member: Planned | undefined) =>
  JSON.parse(decoder.decode(member!.body));

async function image(text: string, platform = AMD64) {
  const tar = await layerTar({ "file.txt": text });
  const built = await buildImage({
    layers: [tar],
    config: { os: platform.os, architecture: platform.architecture },
  });
  return { tar, image: built, raw: await built.rawManifest() };
}

test("OciPlanner: add() gives oci-layout and each new config at once; finish() the rest, each blob once", async () => {
  const a = await image("a");
  const b = await image("b");
  const items = await itemsOf(
    [["app:v1", a.image], ["app:v2", a.image], ["tool:1", b.image]],
    { format: "docker+oci", layers: "compressed" },
  );
  const planner = new OciPlanner(
    resolveOptions({ format: "docker+oci", layers: "compressed" }),
  );
  const configA = blob(JSON.parse(decoder.decode(a.raw)).config.digest);
  const configB = blob(JSON.parse(decoder.decode(b.raw)).config.digest);
  assert.deepEqual((await resolve(planner.add(items[0]))).map((m) => m.name), [
    "oci-layout",
    configA,
  ]);
  assert.deepEqual(await resolve(planner.add(items[1])), []);
  assert.deepEqual((await resolve(planner.add(items[2]))).map((m) => m.name), [
    configB,
  ]);
  const rest = await resolve(planner.finish());
  // Compressed layers of OCI manifests: each manifest kept byte for byte.
  assert.deepEqual(rest.map((m) => m.name), [
    blob(digestOf(a.tar)),
    blob(digestOf(b.tar)),
    blob(digestOf(a.raw)),
    blob(digestOf(b.raw)),
    "index.json",
    "manifest.json",
    "repositories",
  ]);
  assert.deepEqual(rest[2].body, a.raw);
  const index = json(rest.find((m) => m.name === "index.json"));
  assert.deepEqual(
    index.manifests.map((entry: { digest: string }) => entry.digest),
    [digestOf(a.raw), digestOf(a.raw), digestOf(b.raw)],
  );
  assert.deepEqual(index.manifests[2].annotations, {
    "io.containerd.image.name": "docker.io/library/tool:1",
    "org.opencontainers.image.ref.name": "tool:1",
  });
  const manifestJson = json(rest.find((m) => m.name === "manifest.json"));
  assert.deepEqual(manifestJson[1], {
    Config: configA,
    Layers: [blob(digestOf(a.tar))],
    RepoTags: ["app:v2"],
  });
});

test("OciPlanner: uncompressed layers are named by diff_id and the manifest is rewritten with the sizes learnt", async () => {
  const a = await image("a");
  const [item] = await itemsOf([["app:v1", a.image]], { format: "oci" });
  const planner = new OciPlanner(resolveOptions({ format: "oci" }));
  const entries = [...planner.add(item), ...planner.finish()];
  const layer = entries.find(isLayerEntry)!;
  assert.equal(layer.name, blob(digestOf(a.tar)));
  const sizes = new LayerSizes();
  sizes.set(layer.layer, layer.diffId, a.tar.byteLength);
  const planned = await resolve(entries, sizes);
  assert.deepEqual(planned.map((m) => m.name).slice(-1), ["index.json"]);
  const manifestMember = planned[planned.length - 2];
  const manifest = json(manifestMember);
  assert.equal(manifestMember.name, blob(digestOf(manifestMember.body!)));
  assert.deepEqual(manifest.layers, [{
    mediaType: "application/vnd.oci.image.layer.v1.tar",
    digest: digestOf(a.tar),
    size: a.tar.byteLength,
  }]);
  assert.equal(
    json(planned.find((m) => m.name === "index.json")).manifests[0].digest,
    digestOf(manifestMember.body!),
  );
});

test("OciPlanner: a nested index comes before the index naming it, each kept byte for byte, a child named twice written once", async () => {
  const amd = await image("amd");
  const arm = await image("arm", ARM64);
  const inner = await buildIndex([
    { image: amd.image, platform: AMD64 },
    { image: arm.image, platform: ARM64 },
  ]);
  const outer = await buildIndex([{ image: inner }, { image: inner }]);
  const innerRaw = await inner.rawIndex();
  const outerRaw = await outer.rawIndex();
  const options: SaveOptions = { format: "oci", layers: "compressed" };
  const [item] = await itemsOf([["app:v1", outer]], options);
  const planner = new OciPlanner(resolveOptions(options));
  const planned = await resolve([...planner.add(item), ...planner.finish()]);
  const names = planned.map((m) => m.name);
  assert.equal(new Set(names).size, names.length, `twice: ${names}`);
  assert.deepEqual(names.slice(-3), [
    blob(digestOf(innerRaw)),
    blob(digestOf(outerRaw)),
    "index.json",
  ]);
  assert.deepEqual(planned.at(-3)!.body, innerRaw);
  assert.deepEqual(planned.at(-2)!.body, outerRaw);
  assert.ok(names.includes(blob(digestOf(amd.raw))));
  assert.ok(names.includes(blob(digestOf(arm.raw))));
  assert.equal(json(planned.at(-1)).manifests[0].digest, digestOf(outerRaw));
});
