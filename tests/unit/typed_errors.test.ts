/**
 * Every failure is a `DockerSaveError` (issue 19, defect 7): a registry port
 * above 65535, a blob shorter than its descriptor read whole or by a Range.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  buildImage,
  type Descriptor,
  type Image,
  save,
  saveResponse,
} from "../../mod.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { readAll } from "../_kit/bytes.ts";
import { layerTar } from "../_kit/tar.ts";

/**
 * An image whose layer blobs end `missing` bytes before their descriptors,
 * and the image they should be.
 */
async function shortBlobImage(missing: number) {
  const inner = await buildImage({
    layers: [await layerTar({ "a.txt": "a".repeat(5000) })],
    config: { architecture: "amd64", os: "linux" },
  });
  const cut = async (stream: ReadableStream<Uint8Array>, length: number) =>
    new Blob([(await readAll(stream)).slice(0, length)]).stream();
  const image: Image = {
    rawManifest: () => inner.rawManifest(),
    manifest: () => inner.manifest(),
    rawConfig: () => inner.rawConfig(),
    openLayer: async (layer: Descriptor) =>
      cut(await inner.openLayer(layer), layer.size - missing),
    layerAccess: async (layer: Descriptor) => {
      const access = await inner.layerAccess!(layer);
      return {
        openBlobFrom: async (offset: number) =>
          cut(
            await access!.openBlobFrom!(offset),
            layer.size - missing - offset,
          ),
      };
    },
  };
  return { image, inner };
}

/** Where the body of the member whose name ends with `suffix` starts. */
function bodyOffset(tar: Uint8Array, suffix: string): number {
  for (let at = 0; at + 512 <= tar.byteLength;) {
    const name = new TextDecoder().decode(tar.subarray(at, at + 100))
      .replace(/\0.*$/s, "");
    const size = parseInt(
      new TextDecoder().decode(tar.subarray(at + 124, at + 136)),
      8,
    );
    if (name.endsWith(suffix)) return at + 512;
    at += 512 + Math.ceil((size || 0) / 512) * 512;
  }
  throw new Error(`no member ${suffix}`);
}

test("saveResponse() errors a Range over a short blob with SIZE_MISMATCH, as a whole GET does", async () => {
  const { image, inner } = await shortBlobImage(100);
  const entries: [string, Image][] = [["example.com/app:v1", image]];
  const options = { layers: "compressed" } as const;
  // A range from 10 bytes into the layer's body.
  const start = bodyOffset(
    await readAll(save([["example.com/app:v1", inner]], options)),
    "/layer.tar",
  ) + 10;
  await assert.rejects(readAll(save(entries, options)), {
    name: "DockerSaveError",
    code: "SIZE_MISMATCH",
  });
  const response = await saveResponse(
    new Request("http://127.0.0.1/save", {
      headers: { range: `bytes=${start}-` },
    }),
    entries,
    options,
  );
  assert.equal(response.status, 206);
  await assert.rejects(response.arrayBuffer(), (error: Error) => {
    assert.equal(error.name, "DockerSaveError", String(error));
    assert.equal((error as { code?: string }).code, "SIZE_MISMATCH");
    assert.match(error.message, /ended 100 bytes early/);
    return true;
  });
});

test("fromRegistry() refuses a port above 65535 with BAD_REFERENCE, not TypeError", async () => {
  await assert.rejects(
    fromRegistry("localhost:99999/team/app:v1", { dockerConfig: false }),
    {
      name: "DockerSaveError",
      code: "BAD_REFERENCE",
      message:
        'Cannot parse reference "localhost:99999/team/app:v1": registry "localhost:99999" has port 99999, above 65535',
    },
  );
});
