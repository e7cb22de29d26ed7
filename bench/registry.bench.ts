/**
 * How `fromRegistry()` learns uncompressed layer sizes, measured: the gzip
 * trailer (a 4-byte Range request, then one download) against a counting pass
 * (two downloads), and `layers: "compressed"` (one download, no gunzip), on a
 * local Debian `docker-registry`, optionally behind a simulated link.
 *
 * ```sh
 * node --import tsx bench/registry.bench.ts [--size 256] [--runs 3] [--mbit 100]
 * deno run -A bench/registry.bench.ts …; bun bench/registry.bench.ts …
 * ```
 *
 * The image has one layer: a tar holding one file of `--size` MiB that
 * alternates 1 MiB of random bytes and 1 MiB of text (about 2:1 with gzip -6),
 * cached in /tmp/docker-save-regbench/. `--mbit` throttles every response
 * body to that many Mbit/s in the injected `fetch`. Prints one line per run:
 * wall time, bytes fetched from the registry, requests, time to first byte.
 *
 * @module
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import process from "node:process";
import { gzipSync } from "node:zlib";
import { save, type SaveOptions } from "../src/save/save.ts";
import { tarHeader } from "../src/save/tar_writer.ts";
import {
  fromRegistry,
  type FromRegistryOptions,
} from "../src/sources/registry/pull.ts";
import { Cleanup } from "../tests/_kit/cleanup.ts";
import { digestOf } from "../tests/_kit/digest.ts";
import {
  pushBlob,
  pushManifest,
  startRegistry,
} from "../tests/_kit/registry.ts";

const MiB = 1 << 20;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const size = flag("size", 256);
const runs = flag("runs", 3);
const mbit = flag("mbit", 0);

function fixture(): { blob: Uint8Array; diffId: string } {
  const dir = `/tmp/docker-save-regbench/${size}`;
  mkdirSync(dir, { recursive: true });
  if (!existsSync(`${dir}/blob`)) {
    const text = Buffer.alloc(
      MiB,
      "the quick brown fox jumps over the lazy dog\n",
    );
    const parts = [Buffer.from(tarHeader("big.bin", size * MiB))];
    for (let i = 0; i < size; i++) parts.push(i % 2 ? text : randomBytes(MiB));
    parts.push(Buffer.alloc(1024));
    const tar = Buffer.concat(parts);
    writeFileSync(`${dir}/blob`, gzipSync(tar, { level: 6 }));
    writeFileSync(`${dir}/diffid`, digestOf(tar));
  }
  return {
    blob: new Uint8Array(readFileSync(`${dir}/blob`)),
    diffId: readFileSync(`${dir}/diffid`, "utf8"),
  };
}

/** A fetch that counts body bytes and requests, throttled to `mbit`. */
function meteredFetch() {
  const meter = { bytes: 0, requests: 0 };
  const metered: typeof fetch = async (input, init) => {
    meter.requests++;
    const response = await fetch(input, init);
    if (!response.body) return response;
    const start = performance.now();
    let got = 0;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, controller) {
          meter.bytes += chunk.byteLength;
          got += chunk.byteLength;
          if (mbit) {
            const due = start + (got * 8) / (mbit * 1e3);
            const wait = due - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, {
      status: response.status,
      headers: response.headers,
    });
  };
  return { fetch: metered, meter };
}

const runtime = "Deno" in globalThis
  ? "deno"
  : "Bun" in globalThis
  ? "bun"
  : "node";
const { blob, diffId } = fixture();
const cleanup = new Cleanup();
try {
  const registry = await startRegistry(cleanup);
  const digest = await pushBlob(registry.url, "bench/app", blob);
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [diffId] },
  }));
  await pushBlob(registry.url, "bench/app", config);
  const oci = "application/vnd.oci.image";
  await pushManifest(
    registry.url,
    "bench/app",
    "v1",
    new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: `${oci}.manifest.v1+json`,
      config: {
        mediaType: `${oci}.config.v1+json`,
        size: config.length,
        digest: digestOf(config),
      },
      layers: [{
        mediaType: `${oci}.layer.v1.tar+gzip`,
        size: blob.length,
        digest,
      }],
    })),
    `${oci}.manifest.v1+json`,
  );
  const cases: [string, FromRegistryOptions, SaveOptions][] = [
    ["trailer", { uncompressedSizes: "trailer" }, {}],
    ["count", { uncompressedSizes: "count" }, {}],
    ["compressed", {}, { layers: "compressed" }],
  ];
  for (const [label, options, saveOptions] of cases) {
    for (let run = 0; run < runs; run++) {
      const { fetch, meter } = meteredFetch();
      const t0 = performance.now();
      const image = await fromRegistry(`${registry.host}/bench/app:v1`, {
        ...options,
        fetch,
        dockerConfig: false,
      });
      const reader = save([["bench/app:v1", image]], saveOptions).getReader();
      let first = -1;
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
        if (first < 0) first = performance.now() - t0;
      }
      const seconds = (performance.now() - t0) / 1000;
      console.log(
        `${runtime} ${size} MiB ${label}${mbit ? ` @${mbit} Mbit/s` : ""}: ${
          seconds.toFixed(2)
        } s, fetched ${(meter.bytes / MiB).toFixed(1)} MiB (blob ${
          (blob.length / MiB).toFixed(1)
        }) in ${meter.requests} requests, first byte ${first.toFixed(0)} ms`,
      );
    }
  }
} finally {
  await cleanup.close();
}
