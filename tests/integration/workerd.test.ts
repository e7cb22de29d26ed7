/**
 * The worker example in a real Workers runtime: workerd (npm `workerd`)
 * serves examples/worker.ts, bundled by esbuild as users bundle it, with the
 * config of examples/workerd.capnp (the docs' config), with and without
 * `nodejs_compat`, pulling from Debian's docker-registry on 127.0.0.1.
 *
 * - A save in both layer modes gives the bytes Node's `save()` gives for
 *   the same image, and docker 28 loads them (modern-loaders chroot).
 * - `Range`, `If-Range` and `curl -C -` give the same file.
 * - A client that hangs up makes the worker drop its registry fetch (a
 *   counting proxy sees the blob response aborted, part-way, and no retry).
 * - Errors map to the statuses examples/_image.ts documents; a layer that
 *   goes bad after the 200 cuts the download short, never a clean end.
 *
 * workerd is the runtime under test, so this file runs once, under node
 * (skipped under deno and bun). Locally it skips without workerd or the
 * registry; with `CI` set it fails instead.
 *
 * @module
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { gzipSync } from "node:zlib";
import process from "node:process";
import { save, type SaveOptions } from "../../src/save/save.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { readAll, text } from "../_kit/bytes.ts";
import { Cleanup, tempDir } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { freePort } from "../_kit/http.ts";
import { buildGzipImage, type Built, payload } from "../_kit/images.ts";
import {
  acquireModern,
  forget,
  inModern,
  modernSkip,
  modernTemp,
} from "../_kit/modern.ts";
import {
  type Proxy,
  pushImage,
  type Registry,
  registrySkip,
  requireRegistryTools,
  startProxy,
  startRegistry,
} from "../_kit/registry.ts";
import { FAST } from "../_kit/registry_client.ts";
import {
  bundleWorker,
  requireWorkerd,
  startWorkerd,
  type Workerd,
  WORKERD_CONFIG,
  workerdSkip,
  workerdVersion,
} from "../_kit/workerd.ts";
import type { ProbeReport } from "../_kit/workerd_probe.ts";
import { LOADER_TIMEOUT } from "../_kit/time.ts";

const MiB = 1024 * 1024;

const runtime = (globalThis as { Deno?: unknown }).Deno
  ? "deno"
  : (globalThis as { Bun?: unknown }).Bun
  ? "bun"
  : "node";
const skip = runtime !== "node"
  ? "runs once, under node: workerd is the runtime under test"
  : workerdSkip || registrySkip;

const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const curlSkip = ci || spawnSync("curl", ["--version"]).status === 0
  ? false
  : "curl not installed";

const log = (...args: unknown[]) =>
  process.env.VERBOSE && console.error("[workerd]", ...args);

const cleanup = new Cleanup();
let registry: Registry;
let proxy: Proxy;
let app: Built;
let big: Built;
/** A registry host nothing listens on: the worker's fetch fails. */
let deadHost: string;
const workers = new Map<boolean, Workerd>();
const COMPAT = [true, false];
const name = (compat: boolean) =>
  compat ? "nodejs_compat" : "without nodejs_compat";

const appRef = () => `${registry.host}/edge/app:v1`;

async function download(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
  const response = await fetch(url, init);
  return {
    status: response.status,
    headers: response.headers,
    body: new Uint8Array(await response.arrayBuffer()),
  };
}

/** What Node's `save()` writes for the same image. */
async function nodeSave(reference: string, options: SaveOptions) {
  return await readAll(
    save([[reference, await fromRegistry(reference, FAST)]], options),
  );
}

const saveUrl = (worker: Workerd, reference: string, layers: string) =>
  `${worker.url}/save?image=${encodeURIComponent(reference)}` +
  (layers === "uncompressed" ? "" : `&layers=${layers}`);

test("docs/RUNTIMES.md shows examples/workerd.capnp, the config these tests run", async () => {
  const docs = await readFile(
    new URL("../../docs/RUNTIMES.md", import.meta.url),
    "utf8",
  );
  const section = docs.slice(
    docs.indexOf("## Running on Cloudflare Workers / workerd"),
  );
  const block = /```capnp\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "no capnp block in the workerd section");
  assert.equal(block[1], await readFile(WORKERD_CONFIG, "utf8"));
  // The bundling command the docs give is the one bundleWorker() runs.
  assert.match(
    section,
    /esbuild examples\/worker\.ts --bundle --format=esm --platform=browser/,
  );
});

describe("workerd", { skip }, () => {
  before(async () => {
    requireRegistryTools();
    requireWorkerd();
    log(workerdVersion());
    registry = await startRegistry(cleanup);
    proxy = await startProxy(cleanup, registry.url, () => undefined);
    deadHost = `127.0.0.1:${await freePort()}`;
    app = await buildGzipImage({
      files: [
        [["data/a.bin", payload(3 * MiB, 7)]],
        [["etc/motd", text("hello from workerd\n")]],
      ],
    });
    await pushImage(registry.url, "edge/app", "v1", app.image);
    big = await buildGzipImage({
      files: [[["big.bin", payload(48 * MiB, 11)]]],
    });
    await pushImage(registry.url, "edge/big", "v1", big.image);
    const dir = await tempDir(cleanup, "workerd-bundle");
    const bundle = await bundleWorker(dir);
    for (const nodejsCompat of COMPAT) {
      workers.set(
        nodejsCompat,
        await startWorkerd(cleanup, bundle, {
          nodejsCompat,
          registries: [registry.host, proxy.host, deadHost],
        }),
      );
    }
  });
  after(() => cleanup.close());

  for (const compat of COMPAT) {
    for (const layers of ["uncompressed", "compressed"] as const) {
      test(
        `${
          name(compat)
        }: a registry image with ${layers} layers is Node's save() byte for byte`,
        { timeout: LOADER_TIMEOUT },
        async () => {
          const got = await download(
            saveUrl(workers.get(compat)!, appRef(), layers),
          );
          assert.equal(got.status, 200, new TextDecoder().decode(got.body));
          assert.equal(got.headers.get("content-type"), "application/x-tar");
          const expected = await nodeSave(appRef(), { layers });
          assert.equal(digestOf(got.body), digestOf(expected));
          assert.equal(got.body.byteLength, expected.byteLength);
          if (layers === "compressed") {
            assert.equal(
              got.headers.get("content-length"),
              String(expected.byteLength),
            );
          }
        },
      );
    }

    test(
      `${name(compat)}: Range, If-Range and curl -C - give the same file`,
      { timeout: LOADER_TIMEOUT, skip: curlSkip },
      async () => {
        const url = saveUrl(workers.get(compat)!, appRef(), "compressed");
        const whole = await download(url);
        assert.equal(whole.status, 200);
        assert.equal(whole.headers.get("accept-ranges"), "bytes");
        const etag = whole.headers.get("etag")!;
        assert.match(etag, /^"[^"]+"$/);
        const total = whole.body.byteLength;

        const part = await download(url, {
          headers: { range: "bytes=1000-99999" },
        });
        assert.equal(part.status, 206);
        assert.equal(
          part.headers.get("content-range"),
          `bytes 1000-99999/${total}`,
        );
        assert.equal(part.headers.get("content-length"), "99000");
        assert.deepEqual(part.body, whole.body.subarray(1000, 100000));

        const tail = await download(url, { headers: { range: "bytes=-700" } });
        assert.equal(tail.status, 206);
        assert.deepEqual(tail.body, whole.body.subarray(total - 700));

        const same = await download(url, {
          headers: { range: `bytes=${total - 5000}-`, "if-range": etag },
        });
        assert.equal(same.status, 206);
        assert.deepEqual(same.body, whole.body.subarray(total - 5000));
        const changed = await download(url, {
          headers: { range: "bytes=0-99", "if-range": '"not-this-one"' },
        });
        assert.equal(changed.status, 200, "a stale If-Range gets it whole");
        assert.deepEqual(changed.body, whole.body);

        const beyond = await download(url, {
          headers: { range: `bytes=${total}-` },
        });
        assert.equal(beyond.status, 416);
        assert.equal(beyond.headers.get("content-range"), `bytes */${total}`);

        // An interrupted download, resumed by curl where it stopped.
        const dir = await tempDir(cleanup, "workerd-resume");
        const file = join(dir, "app.tar");
        await writeFile(file, whole.body.subarray(0, Math.floor(total * 0.4)));
        await new Promise<void>((resolve, reject) =>
          execFile(
            "curl",
            ["-sS", "--fail", "-C", "-", "-o", file, url],
            (error, _stdout, stderr) =>
              error ? reject(new Error(`curl: ${stderr}`)) : resolve(),
          )
        );
        assert.equal(digestOf(await readFile(file)), digestOf(whole.body));
      },
    );

    test(
      `${name(compat)}: errors map to the statuses the example documents`,
      { timeout: LOADER_TIMEOUT },
      async () => {
        const worker = workers.get(compat)!;
        const status = async (
          query: string,
          init?: RequestInit,
        ): Promise<[number, string]> => {
          const got = await download(`${worker.url}${query}`, init);
          return [got.status, new TextDecoder().decode(got.body)];
        };
        const ref = encodeURIComponent(appRef());
        const cases: [string, number, RegExp, RequestInit?][] = [
          [`/save?image=${ref}&tag=Bad:Tag`, 400, /^BAD_TAG: /],
          [`/save?image=${ref}&layers=zip`, 400, /layers must be/],
          [`/save?image=${encodeURIComponent("bad//ref")}`, 400, /.+/],
          ["/save?image=docker.io/library/alpine:3", 403, /not allowed/],
          [
            `/save?image=${
              encodeURIComponent(`${registry.host}/edge/none:v1`)
            }`,
            404,
            /^MANIFEST_NOT_FOUND: /,
          ],
          [
            `/save?image=${encodeURIComponent(`${deadHost}/edge/app:v1`)}`,
            502,
            /^REGISTRY_ERROR: /,
          ],
          [`/save?image=${ref}`, 405, /Only GET and HEAD/, { method: "POST" }],
        ];
        for (const [query, expected, body, init] of cases) {
          const [got, message] = await status(query, init);
          log(name(compat), query, got, message.trim());
          assert.equal(got, expected, `${query}: ${message}`);
          assert.match(message, body, query);
        }
      },
    );
  }

  test(
    "the edge path takes native sha256 and gunzip where workerd has them, and reads every gzip member",
    { timeout: LOADER_TIMEOUT },
    async () => {
      const dir = await tempDir(cleanup, "workerd-probe");
      const bundle = await bundleWorker(
        dir,
        new URL("../_kit/workerd_probe.ts", import.meta.url).pathname,
      );
      const parts = [
        payload(2 * MiB, 3),
        text("second member\n"),
        payload(MiB, 5),
      ];
      const body = new Uint8Array(
        Buffer.concat(parts.map((part) => gzipSync(part))),
      );
      const whole = new Uint8Array(Buffer.concat(parts));
      for (const nodejsCompat of COMPAT) {
        const probe = await startWorkerd(cleanup, bundle, {
          nodejsCompat,
          registries: [],
        });
        const response = await fetch(probe.url, { method: "POST", body });
        const report: ProbeReport = await response.json();
        log(name(nodejsCompat), report);
        assert.equal(report.size, whole.byteLength, name(nodejsCompat));
        assert.equal(`sha256:${report.sha256}`, digestOf(whole));
        assert.equal(
          report.hash,
          nodejsCompat ? "node" : "digest-stream",
          `${name(nodejsCompat)}: sha256 by ${report.hash}`,
        );
      }
    },
  );

  test(
    "a client that hangs up makes the worker drop its registry fetch",
    { timeout: LOADER_TIMEOUT },
    async () => {
      const reference = `${proxy.host}/edge/big:v1`;
      const [layer] = big.layers;
      const blobRequests = () =>
        proxy.requests.filter((r) =>
          r.path.includes(layer.digest.slice(7)) && r.range === undefined
        );
      const controller = new AbortController();
      const response = await fetch(
        saveUrl(workers.get(true)!, reference, "uncompressed"),
        { signal: controller.signal },
      );
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      let received = 0;
      while (received < 2 * MiB) {
        const { done, value } = await reader.read();
        assert.ok(!done, "ended early");
        received += value.byteLength;
      }
      controller.abort();
      let [blob] = blobRequests();
      for (let i = 0; i < 200 && blob?.state !== "aborted"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        [blob] = blobRequests();
      }
      log("disconnect", { received, blob, size: layer.blob.byteLength });
      assert.ok(blob, "the worker never fetched the layer");
      assert.equal(blob.state, "aborted", "the registry fetch went on");
      assert.ok(
        blob.sent! < layer.blob.byteLength / 2,
        `the proxy sent ${blob.sent} of ${layer.blob.byteLength} bytes`,
      );
      // No retry of a fetch the worker gave up on.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(blobRequests().length, 1);
    },
  );

  test(
    "a layer that goes bad after the 200 cuts the download short",
    { timeout: LOADER_TIMEOUT },
    async () => {
      const [layer] = app.layers;
      const corrupting = await startProxy(
        cleanup,
        registry.url,
        (request) =>
          request.path.includes(layer.digest.slice(7))
            ? { corruptAt: 1000 }
            : undefined,
      );
      const bundle = await bundleWorker(await tempDir(cleanup, "workerd-bad"));
      for (const nodejsCompat of COMPAT) {
        const worker = await startWorkerd(cleanup, bundle, {
          nodejsCompat,
          registries: [corrupting.host],
        });
        for (const layers of ["uncompressed", "compressed"]) {
          const response = await fetch(
            saveUrl(worker, `${corrupting.host}/edge/app:v1`, layers),
          );
          assert.equal(response.status, 200);
          await assert.rejects(
            response.arrayBuffer(),
            `${name(nodejsCompat)}, ${layers}: ended cleanly`,
          );
        }
      }
    },
  );

  test(
    "docker 28 loads what the worker saves, in both layer modes",
    { timeout: 600_000, skip: modernSkip },
    async () => {
      const release = await acquireModern();
      const temp = await modernTemp("workerd");
      const tags = [`${registry.host}/edge/app:v1`];
      try {
        const diffIds = JSON.parse(new TextDecoder().decode(app.config))
          .rootfs.diff_ids;
        for (const layers of ["uncompressed", "compressed"]) {
          const got = await download(
            saveUrl(workers.get(true)!, appRef(), layers),
          );
          assert.equal(got.status, 200);
          await writeFile(join(temp.host, `${layers}.tar`), got.body);
          await forget(tags);
          const loaded = await inModern([
            "docker",
            "load",
            "-i",
            `${temp.inside}/${layers}.tar`,
          ]);
          assert.match(loaded, /Loaded image: /, loaded);
          const inspect = JSON.parse(
            await inModern(["docker", "image", "inspect", tags[0]]),
          );
          assert.deepEqual(inspect[0].RootFS.Layers, diffIds, layers);
        }
      } finally {
        await forget(tags).catch(() => {});
        await temp.dispose();
        await release();
      }
    },
  );
});
