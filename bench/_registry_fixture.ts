/**
 * The bench's image served by a loopback registry: Debian's docker-registry
 * on 127.0.0.1 (tests/_kit/registry.ts), holding each size's fixture as
 * `bench/x:<size>`, blobs byte for byte (so the digests match the layout's).
 * The layer is uploaded as a stream, whatever its size.
 *
 * @module
 */

import { createReadStream, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Cleanup } from "../tests/_kit/cleanup.ts";
import {
  pushBlob,
  pushManifest,
  type Registry,
  startRegistry,
} from "../tests/_kit/registry.ts";
import type { Fixture } from "./_fixture.ts";
import { log } from "./_harness.ts";

const REPOSITORY = "bench/x";

/** Starts the registry; `cleanup` stops it and removes its storage. */
export function startBenchRegistry(cleanup: Cleanup): Promise<Registry> {
  return startRegistry(cleanup);
}

/**
 * Pushes a fixture (config, layer, manifest); resolves with its reference,
 * `127.0.0.1:PORT/bench/x:<size>`.
 */
export async function pushFixture(
  registry: Registry,
  fixture: Fixture,
): Promise<string> {
  const started = performance.now();
  const blob = (digest: string) =>
    join(fixture.dir, "blobs", "sha256", digest.slice(7));
  const index = JSON.parse(
    readFileSync(join(fixture.dir, "index.json"), "utf8"),
  );
  const entry = index.manifests[0];
  const manifestBytes = new Uint8Array(readFileSync(blob(entry.digest)));
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  await pushBlob(
    registry.url,
    REPOSITORY,
    new Uint8Array(readFileSync(blob(manifest.config.digest))),
  );
  for (const layer of manifest.layers) {
    await uploadFile(registry.url, blob(layer.digest), layer.digest);
  }
  const tag = String(fixture.sizeMiB);
  await pushManifest(
    registry.url,
    REPOSITORY,
    tag,
    manifestBytes,
    entry.mediaType,
  );
  log(
    `registry: pushed the ${fixture.sizeMiB} MiB fixture in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s`,
  );
  return `${registry.host}/${REPOSITORY}:${tag}`;
}

// A monolithic upload (POST, then PUT ?digest=) streaming the file.
async function uploadFile(url: string, path: string, digest: string) {
  const start = await fetch(`${url}/v2/${REPOSITORY}/blobs/uploads/`, {
    method: "POST",
  });
  await start.body?.cancel();
  if (start.status !== 202) {
    throw new Error(`Cannot start upload: status ${start.status}`);
  }
  const location = new URL(start.headers.get("location")!, url);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, {
    method: "PUT",
    headers: {
      "content-type": "application/octet-stream",
      "content-length": String(statSync(path).size),
    },
    body: Readable.toWeb(createReadStream(path)) as ReadableStream<
      Uint8Array
    >,
    duplex: "half",
  } as RequestInit);
  const text = await put.text();
  if (put.status !== 201) {
    throw new Error(`Cannot upload ${digest}: status ${put.status} ${text}`);
  }
}
