/**
 * A worker that runs one stage of the edge path over generated data, so
 * `bench/workerd.bench.ts --stages` can time each from outside (workerd's
 * clock stands still while a request computes): `GET /?op=OP&mib=N`.
 *
 * - `gen`: makes N MiB in 64 KiB chunks (half random, half text), the
 *   baseline every other op includes;
 * - `sha-node`, `sha-digest-stream`, `sha-noble`: sha256 of them by one
 *   backend of `createSha256`;
 * - `inflate-node`, `inflate-decompression-stream`, `inflate-web`: gunzip of
 *   them (gzipped once per isolate by `CompressionStream`, outside the
 *   timing of later requests) by one backend of `createGunzip`;
 * - `pass`: the chunks through three identity `TransformStream`s;
 * - `small-chunks`: the same three stages over 4 KiB chunks, the size
 *   workerd's `fetch` hands out.
 *
 * A backend the runtime lacks answers 501.
 *
 * @module
 */

import { createGunzip, type GunzipBackend } from "../src/runtime/decompress.ts";
import { createSha256, type HashBackend } from "../src/runtime/hash.ts";

const MiB = 1 << 20;
let block: Uint8Array | undefined;

function data(): Uint8Array {
  if (!block) {
    block = new Uint8Array(MiB);
    for (let at = 0; at < MiB / 2; at += 65536) {
      crypto.getRandomValues(block.subarray(at, at + 65536));
    }
    for (let at = MiB / 2; at < MiB; at++) block[at] = 97 + (at % 26);
  }
  return block;
}

function* chunks(mib: number, size: number): Generator<Uint8Array> {
  const bytes = data();
  for (let m = 0; m < mib; m++) {
    for (let at = 0; at < MiB; at += size) yield bytes.slice(at, at + size);
  }
}

const gzipped = new Map<number, Promise<Uint8Array>>();
function gzipOf(mib: number): Promise<Uint8Array> {
  let made = gzipped.get(mib);
  if (!made) {
    const stream = ReadableStream.from(chunks(mib, 65536))
      .pipeThrough(
        new CompressionStream("gzip") as unknown as ReadableWritablePair<
          Uint8Array,
          Uint8Array
        >,
      );
    made = new Response(stream).arrayBuffer().then((b) => new Uint8Array(b));
    gzipped.set(mib, made);
  }
  return made;
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let total = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return total;
    total += value.byteLength;
  }
}

function through(stream: ReadableStream<Uint8Array>): ReadableStream<
  Uint8Array
> {
  let out = stream;
  for (let i = 0; i < 3; i++) out = out.pipeThrough(new TransformStream());
  return out;
}

async function run(op: string, mib: number): Promise<unknown> {
  if (op === "gen") {
    let total = 0;
    for (const chunk of chunks(mib, 65536)) total += chunk.byteLength;
    return total;
  }
  if (op.startsWith("sha-")) {
    const hash = await createSha256(op.slice(4) as HashBackend);
    for (const chunk of chunks(mib, 65536)) await hash.update(chunk);
    return await hash.hexDigest();
  }
  if (op.startsWith("inflate-")) {
    const gz = await gzipOf(mib);
    const input = ReadableStream.from((function* () {
      for (let at = 0; at < gz.byteLength; at += 65536) {
        yield gz.slice(at, at + 65536);
      }
    })());
    const gunzip = await createGunzip(op.slice(8) as GunzipBackend);
    return await drain(input.pipeThrough(gunzip));
  }
  if (op === "pass") {
    return await drain(through(ReadableStream.from(chunks(mib, 65536))));
  }
  if (op === "small-chunks") {
    return await drain(through(ReadableStream.from(chunks(mib, 4096))));
  }
  throw new Error(`unknown op ${op}`);
}

export default {
  /** Runs `?op=` over `?mib=` MiB; a GET without `op` answers 200. */
  async fetch(request: Request): Promise<Response> {
    const query = new URL(request.url).searchParams;
    const op = query.get("op");
    if (!op) return new Response("ok\n");
    const mib = Number(query.get("mib") ?? 64);
    try {
      return Response.json({ op, result: await run(op, mib) });
    } catch (error) {
      return new Response(`${(error as Error).message}\n`, { status: 501 });
    }
  },
};
