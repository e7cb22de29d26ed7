/**
 * `npm start`: builds a small sample image in memory (two gzip layers made
 * of real files), saves it as `demo.tar` with `saveToFile`, then reads the
 * tarball back and prints what is in it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { unpackTar } from "modern-tar";
import { buildImage, saveToFile } from "../mod.ts";
import { tarStream } from "../src/save/tar_writer.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** A layer tar holding the given files. */
async function layerTar(files: Record<string, string>): Promise<Uint8Array> {
  const entries = Object.entries(files).map(([name, body]) => ({
    name,
    size: text(body).byteLength,
    body: text(body),
  }));
  return new Uint8Array(await new Response(tarStream(entries)).arrayBuffer());
}

const image = await buildImage({
  compression: "gzip",
  mediaTypes: "docker",
  layers: [
    await layerTar({
      "etc/os-release": 'NAME="docker-save demo"\n',
      "etc/motd": "Saved by docker-save.\n",
    }),
    await layerTar({ "app/hello.sh": "#!/bin/sh\necho hello\n" }),
  ],
  config: {
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/bin/sh", "/app/hello.sh"], Env: ["PATH=/usr/bin:/bin"] },
    created: "2024-01-01T00:00:00Z",
    history: [
      { created: "2024-01-01T00:00:00Z", created_by: "ADD rootfs /" },
      {
        created: "2024-01-01T00:00:00Z",
        created_by: 'ENV GREETING="héllo"',
        empty_layer: true,
      },
      { created: "2024-01-01T00:00:00Z", created_by: "COPY hello.sh /app/" },
    ],
  },
});

await saveToFile("demo.tar", [["docker-save/demo:latest", image]]);

const bytes = await readFile("demo.tar");
console.log(
  `demo.tar: ${bytes.byteLength} bytes, sha256 ${
    createHash("sha256").update(bytes).digest("hex")
  }`,
);
for (const { header, data } of await unpackTar(bytes)) {
  console.log(`  ${String(header.size).padStart(6)}  ${header.name}`);
  if (header.name === "manifest.json" || header.name === "repositories") {
    console.log(`          ${new TextDecoder().decode(data)}`);
  }
}
console.log("Load it with: docker load -i demo.tar");
