/**
 * Every registry body read whole (a manifest, an index, a config) is read
 * within `timeout` in all, not `timeout` per chunk (issue 19, defect 6): a
 * registry that drips one byte every 300 ms cannot hold a save with
 * `timeout: 1000` for minutes.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { save } from "../../src/save/save.ts";
import { Cleanup } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { MEDIA } from "../_kit/format.ts";
import { listen } from "../_kit/http.ts";
import { makeParts } from "../_kit/images.ts";
import { FAST } from "../_kit/registry_client.ts";
import { layerTar } from "../_kit/tar.ts";

/** Sends `body` one byte every `ms`, until done or the client goes away. */
function drip(res: ServerResponse, body: Uint8Array, ms: number): void {
  let sent = 0;
  const timer = setInterval(() => {
    if (res.destroyed || sent >= body.byteLength) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(body.subarray(sent, ++sent));
  }, ms);
  res.on("close", () => clearInterval(timer));
}

/** A registry of one image whose manifest or config is dripped. */
async function drippingRegistry(
  cleanup: Cleanup,
  dripped: "manifest" | "config",
) {
  const parts = makeParts({ layers: [await layerTar({ "a.txt": "a" })] });
  const manifest = new TextEncoder().encode(JSON.stringify(parts.manifest));
  const blobs = new Map<string, Uint8Array>([
    ...parts.blobs,
    [parts.manifest.config.digest, parts.config],
  ]);
  const { host } = await listen(cleanup, (req, res) => {
    req.resume();
    const path = req.url ?? "/";
    if (path === "/v2/") return void res.end();
    if (path.includes("/manifests/")) {
      res.writeHead(200, {
        "content-type": MEDIA.ociManifest,
        "content-length": String(manifest.byteLength),
        "docker-content-digest": digestOf(manifest),
      });
      if (dripped === "manifest") return drip(res, manifest, 300);
      return void res.end(manifest);
    }
    const blob = blobs.get(path.replace(/^.*\/blobs\//, ""));
    if (!blob) return void res.writeHead(404).end();
    res.writeHead(200, { "content-length": String(blob.byteLength) });
    if (dripped === "config" && path.endsWith(parts.manifest.config.digest)) {
      return drip(res, blob, 300);
    }
    res.end(blob);
  });
  return host;
}

for (const dripped of ["manifest", "config"] as const) {
  test(
    `fromRegistry() reads a dripped ${dripped} within its timeout, not per byte`,
    {
      timeout: 60_000,
    },
    async () => {
      const cleanup = new Cleanup();
      try {
        const host = await drippingRegistry(cleanup, dripped);
        const started = Date.now();
        // Two attempts of at most 1 s each, then a DockerSaveError.
        const saving = fromRegistry(`${host}/t/app:v1`, {
          ...FAST,
          timeout: 1000,
          retry: { attempts: 1, delay: 1, maxDelay: 5 },
        }).then((image) =>
          new Response(save([["t/app:v1", image]])).arrayBuffer()
        );
        let timer: ReturnType<typeof setTimeout> | undefined;
        const hung = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("still reading after 15 s")),
            15_000,
          );
        });
        try {
          await Promise.race([
            assert.rejects(saving, {
              name: "DockerSaveError",
              code: "REGISTRY_ERROR",
              message: new RegExp(`${dripped}.*not read in 1000 ms`),
            }),
            hung,
          ]);
        } finally {
          clearTimeout(timer);
        }
        const elapsed = Date.now() - started;
        assert.ok(elapsed < 5_000, `${elapsed} ms`);
      } finally {
        await cleanup.close();
      }
    },
  );
}
