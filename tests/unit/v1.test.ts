/**
 * The v1 conversion of docs/FORMAT.md ("v1 ids", "Beyond the reference"):
 * every expected id is computed here with node:crypto from the chain formula
 * `sha256(hex + " " + parent)`, the top one with `+ " " + configText`; every
 * expected v1 json is written by hand from the "JSON text" rules.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Image } from "../../src/model/image.ts";
import { save } from "../../src/save/save.ts";
import { buildImage } from "../../src/sources/memory.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { sha256Hex } from "../_kit/digest.ts";
import { EMPTY_LAYER_HEX, v1Id } from "../_kit/format.ts";
import { basicParts } from "../_kit/images.ts";
import {
  layerTar,
  memberText,
  readTar,
  type TarMember,
  v1Dirs,
} from "../_kit/tar.ts";

const TESTDATA = new URL("../testdata/", import.meta.url).pathname;
const decoder = new TextDecoder();

interface ManifestJsonEntry {
  Config: string;
  Layers: string[];
  RepoTags: string[];
}

function manifestJson(members: TarMember[]): ManifestJsonEntry[] {
  return JSON.parse(memberText(members, "manifest.json"));
}

function layerPaths(...ids: string[]): string[] {
  return ids.map((id) => `${id}/layer.tar`);
}

function members(name: string): Promise<TarMember[]> {
  return readTar(
    new Uint8Array(readFileSync(`${TESTDATA}${name}/expected.tar`)),
  );
}

/** The config text the image is saved with (its stored bytes, as UTF-8). */
async function configTextOf(image: Image): Promise<string> {
  return decoder.decode(await image.rawConfig());
}

/** Three small, distinct layer tars and their sha256 hex (= blob digest hex). */
async function layers(
  count: number,
): Promise<{ tars: Uint8Array[]; hex: string[] }> {
  const tars: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    tars.push(await layerTar({ [`layer${i}/file.txt`]: `layer ${i}\n` }));
  }
  return { tars, hex: tars.map((tar) => sha256Hex(tar)) };
}

// --- golden cases -------------------------------------------------------------

test("save() gives the golden image the v1 ids of the chain formula, as the reference does", async () => {
  const parts = basicParts();
  const configText = decoder.decode(parts.config);
  const [hex1, hex2, hex3] = parts.manifest.layers.map((layer) =>
    layer.digest.slice("sha256:".length)
  );
  const id1 = v1Id(hex1, "");
  const id2 = v1Id(hex2, id1);
  const id3 = v1Id(hex3, id2, configText);

  const golden = await members("basic");
  assert.deepEqual(v1Dirs(golden), [id3, id2, id1]);

  const image = await fromOciLayout(`${TESTDATA}basic/oci`, "basic");
  const ours = await readTar(save([["oracle/basic:v1", image]]));
  assert.deepEqual(v1Dirs(ours), [id3, id2, id1]);
  assert.deepEqual(manifestJson(ours)[0].Layers, layerPaths(id1, id2, id3));
  assert.deepEqual(JSON.parse(memberText(ours, "repositories")), {
    "oracle/basic": { v1: id3 },
  });
  assert.equal(JSON.parse(memberText(ours, `${id3}/json`)).parent, id2);
  assert.equal(JSON.parse(memberText(ours, `${id2}/json`)).parent, id1);
  assert.equal(JSON.parse(memberText(ours, `${id1}/json`)).parent, undefined);
});

test("save() chains empty history entries with the empty-layer digest and names an unwritten top", async () => {
  const dir = `${TESTDATA}empty-layers/oci`;
  const index = JSON.parse(readFileSync(`${dir}/index.json`, "utf8"));
  const blob = (digest: string) =>
    readFileSync(
      `${dir}/blobs/sha256/${digest.slice("sha256:".length)}`,
      "utf8",
    );
  const manifest = JSON.parse(blob(index.manifests[0].digest));
  const configText = blob(manifest.config.digest);
  const [hex1, hex2, hex3] = manifest.layers.map((layer: { digest: string }) =>
    layer.digest.slice("sha256:".length)
  );
  // History: layer, empty, layer, empty, empty, layer, empty (top).
  const id1 = v1Id(hex1, "");
  const e2 = v1Id(EMPTY_LAYER_HEX, id1);
  const id3 = v1Id(hex2, e2);
  const e4 = v1Id(EMPTY_LAYER_HEX, id3);
  const e5 = v1Id(EMPTY_LAYER_HEX, e4);
  const id6 = v1Id(hex3, e5);
  const top = v1Id(EMPTY_LAYER_HEX, id6, configText);

  const golden = await members("empty-layers");
  assert.deepEqual(v1Dirs(golden), [id6, id3, id1]);
  assert.deepEqual(JSON.parse(memberText(golden, "repositories")), {
    "oracle/empty-layers": { v1: top },
  });

  const image = await fromOciLayout(dir, "empty-layers");
  const ours = await readTar(save([["oracle/empty-layers:v1", image]]));
  assert.deepEqual(v1Dirs(ours), [id6, id3, id1]);
  assert.deepEqual(manifestJson(ours)[0].Layers, layerPaths(id1, id3, id6));
  assert.deepEqual(JSON.parse(memberText(ours, "repositories")), {
    "oracle/empty-layers": { v1: top },
  });
  assert.equal(JSON.parse(memberText(ours, `${id6}/json`)).parent, e5);
});

// --- beyond the reference: history missing or short -------------------------

test("save() treats each layer of an image without history as a {} entry", async () => {
  const { tars, hex } = await layers(2);
  const image = await buildImage({ layers: tars });
  const configText = await configTextOf(image);
  const id1 = v1Id(hex[0], "");
  const id2 = v1Id(hex[1], id1, configText);

  const out = await readTar(save([["oracle/no-history:v1", image]]));
  assert.deepEqual(out.map((member) => member.name), [
    `${sha256Hex(configText)}.json`,
    `${id2}/VERSION`,
    `${id2}/layer.tar`,
    `${id2}/json`,
    `${id1}/VERSION`,
    `${id1}/layer.tar`,
    `${id1}/json`,
    "repositories",
    "manifest.json",
  ]);
  assert.deepEqual(manifestJson(out)[0].Layers, layerPaths(id1, id2));
  assert.deepEqual(
    out.find((m) => m.name === `${id1}/layer.tar`)!.data,
    tars[0],
  );
  assert.deepEqual(
    out.find((m) => m.name === `${id2}/layer.tar`)!.data,
    tars[1],
  );
  assert.equal(memberText(out, `${id1}/json`), `{"id": "${id1}"}`);
  assert.equal(
    memberText(out, `${id2}/json`),
    `{"architecture": "amd64", "id": "${id2}", "os": "linux", "parent": "${id1}"}`,
  );
});

test("save() appends {} entries at the top when history is shorter than the layers", async () => {
  const { tars, hex } = await layers(3);
  const image = await buildImage({
    layers: tars,
    config: {
      architecture: "amd64",
      os: "linux",
      history: [{ created: "2024-01-01T00:00:00Z", created_by: "ADD base /" }],
    },
  });
  const configText = await configTextOf(image);
  const id1 = v1Id(hex[0], "");
  const id2 = v1Id(hex[1], id1);
  const id3 = v1Id(hex[2], id2, configText);

  const out = await readTar(save([["oracle/short-history:v1", image]]));
  assert.deepEqual(v1Dirs(out), [id3, id2, id1]);
  assert.deepEqual(manifestJson(out)[0].Layers, layerPaths(id1, id2, id3));
  assert.equal(
    memberText(out, `${id1}/json`),
    `{"container_config": {"Cmd": ["ADD base /"]}, "created": "2024-01-01T00:00:00Z", "id": "${id1}"}`,
  );
  assert.equal(
    memberText(out, `${id2}/json`),
    `{"id": "${id2}", "parent": "${id1}"}`,
  );
  assert.equal(
    memberText(out, `${id3}/json`),
    `{"architecture": "amd64", "id": "${id3}", "os": "linux", "parent": "${id2}"}`,
  );
});

// --- empty entries --------------------------------------------------------------

test("save() counts a history entry with empty_layer: false as empty", async () => {
  const { tars, hex } = await layers(2);
  const image = await buildImage({
    layers: tars,
    config: {
      architecture: "amd64",
      os: "linux",
      history: [
        { created_by: "ADD a /" },
        { created_by: "ENV X=1", empty_layer: false },
        { created_by: "ADD b /" },
      ],
    },
  });
  const configText = await configTextOf(image);
  const id1 = v1Id(hex[0], "");
  const id2 = v1Id(EMPTY_LAYER_HEX, id1);
  const id3 = v1Id(hex[1], id2, configText);

  const out = await readTar(save([["oracle/empty-false:v1", image]]));
  assert.deepEqual(v1Dirs(out), [id3, id1]);
  assert.deepEqual(manifestJson(out)[0].Layers, layerPaths(id1, id3));
  assert.equal(JSON.parse(memberText(out, `${id3}/json`)).parent, id2);
  assert.deepEqual(
    out.find((m) => m.name === `${id3}/layer.tar`)!.data,
    tars[1],
  );
});

test("save() names a throwaway top id in repositories and writes no directory for it", async () => {
  const { tars, hex } = await layers(2);
  const image = await buildImage({
    layers: tars,
    config: {
      architecture: "amd64",
      os: "linux",
      history: [
        { created_by: "ADD a /" },
        { created_by: "ADD b /" },
        { created_by: 'CMD ["sh"]', empty_layer: true },
      ],
    },
  });
  const configText = await configTextOf(image);
  const id1 = v1Id(hex[0], "");
  const id2 = v1Id(hex[1], id1);
  const top = v1Id(EMPTY_LAYER_HEX, id2, configText);

  const out = await readTar(save([["oracle/top-empty:v1", image]]));
  assert.deepEqual(v1Dirs(out), [id2, id1]);
  assert.ok(!out.some((member) => member.name.startsWith(`${top}/`)));
  assert.deepEqual(manifestJson(out)[0].Layers, layerPaths(id1, id2));
  assert.equal(
    memberText(out, "repositories"),
    `{"oracle/top-empty": {"v1": "${top}"}}`,
  );
});

// --- several images -------------------------------------------------------------

test("save() writes the v1 directories two images share once", async () => {
  const { tars, hex } = await layers(3);
  const [base, x, y] = tars;
  const a = await buildImage({
    layers: [base, x],
    config: {
      architecture: "amd64",
      os: "linux",
      history: [{ created_by: "ADD base /" }, { created_by: "ADD x /" }],
    },
  });
  const b = await buildImage({
    layers: [base, y],
    config: {
      architecture: "amd64",
      os: "linux",
      history: [{ created_by: "ADD base /" }, { created_by: "ADD y /" }],
    },
  });
  const textA = await configTextOf(a);
  const textB = await configTextOf(b);
  const shared = v1Id(hex[0], "");
  const idA = v1Id(hex[1], shared, textA);
  const idB = v1Id(hex[2], shared, textB);

  const out = await readTar(save([["oracle/a:v1", a], ["oracle/b:v1", b]]));
  assert.deepEqual(out.map((member) => member.name), [
    `${sha256Hex(textA)}.json`,
    `${sha256Hex(textB)}.json`,
    `${idA}/VERSION`,
    `${idA}/layer.tar`,
    `${idA}/json`,
    `${shared}/VERSION`,
    `${shared}/layer.tar`,
    `${shared}/json`,
    `${idB}/VERSION`,
    `${idB}/layer.tar`,
    `${idB}/json`,
    "repositories",
    "manifest.json",
  ]);
  const [entryA, entryB] = manifestJson(out);
  assert.deepEqual(entryA.Layers, layerPaths(shared, idA));
  assert.deepEqual(entryB.Layers, layerPaths(shared, idB));
  assert.deepEqual(JSON.parse(memberText(out, "repositories")), {
    "oracle/a": { v1: idA },
    "oracle/b": { v1: idB },
  });
});

test("save() of an image and its child shares the parent's lower v1 directories", async () => {
  const { tars, hex } = await layers(3);
  const history = [{ created_by: "ADD one /" }, { created_by: "ADD two /" }];
  const parent = await buildImage({
    layers: tars.slice(0, 2),
    config: { architecture: "amd64", os: "linux", history },
  });
  const child = await buildImage({
    layers: tars,
    config: {
      architecture: "amd64",
      os: "linux",
      history: [...history, { created_by: "ADD three /" }],
    },
  });
  const parentText = await configTextOf(parent);
  const childText = await configTextOf(child);
  const id1 = v1Id(hex[0], "");
  // The parent's top id hashes its config, so the child's second layer,
  // not a top there, gets an id of its own.
  const parentTop = v1Id(hex[1], id1, parentText);
  const child2 = v1Id(hex[1], id1);
  const child3 = v1Id(hex[2], child2, childText);

  const out = await readTar(
    save([["oracle/parent:v1", parent], ["oracle/child:v1", child]]),
  );
  assert.deepEqual(v1Dirs(out), [parentTop, id1, child3, child2]);
  assert.equal(
    out.filter((member) => member.name === `${id1}/layer.tar`).length,
    1,
  );
  const [entryParent, entryChild] = manifestJson(out);
  assert.deepEqual(entryParent.Layers, layerPaths(id1, parentTop));
  assert.deepEqual(entryChild.Layers, layerPaths(id1, child2, child3));
  assert.equal(JSON.parse(memberText(out, `${child2}/json`)).parent, id1);
  assert.equal(JSON.parse(memberText(out, `${child3}/json`)).parent, child2);
});

// --- JSON text ------------------------------------------------------------------

test("save() escapes non-ASCII in v1 json as Python json.dumps does", async () => {
  const { tars, hex } = await layers(2);
  const image = await buildImage({
    layers: tars,
    config: {
      architecture: "amd64",
      os: "linux",
      config: {
        Labels: {
          "\u{1F600}": "emoji",
          "\uFFFF": "last BMP",
          e: "\u00e9\u007f/\t",
        },
      },
      history: [
        {
          created_by: "echo caf\u00e9 \u{1F600}",
          comment: 'tab\there "q" back\\slash',
        },
        { created_by: "top" },
      ],
    },
  });
  const configText = await configTextOf(image);
  const id1 = v1Id(hex[0], "");
  const id2 = v1Id(hex[1], id1, configText);

  const out = await readTar(save([["oracle/unicode:v1", image]]));
  assert.equal(
    memberText(out, `${id1}/json`),
    String
      .raw`{"comment": "tab\there \"q\" back\\slash", "container_config": {"Cmd": ["echo caf\u00e9 \ud83d\ude00"]}, "id": "${id1}"}`,
  );
  // Keys by code point: "e" < U+FFFF < U+1F600 (UTF-16 order would put the
  // emoji's high surrogate 0xD83D before U+FFFF).
  assert.equal(
    memberText(out, `${id2}/json`),
    String
      .raw`{"architecture": "amd64", "config": {"Labels": {"e": "\u00e9\u007f/\t", "\uffff": "last BMP", "\ud83d\ude00": "emoji"}}, "id": "${id2}", "os": "linux", "parent": "${id1}"}`,
  );
});
