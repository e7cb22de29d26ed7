/**
 * `npm start`: builds a small sample image in memory (two gzip layers made
 * of real files), saves it as `demo.tar` (or the path given as the first
 * argument) with `saveToFile`, then reads the tarball back and prints what is
 * in it. The image runs: its `Cmd` is `/hello`, a 176-byte static
 * linux/amd64 program (no shell, no libc) that prints a greeting, so
 * `docker load -i demo.tar && docker run --rm docker-save/demo` says hello.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { packTar, unpackTar } from "modern-tar";
import { buildImage, saveToFile } from "../mod.ts";

const text = (s: string) => new TextEncoder().encode(s);
const OUT = process.argv[2] ?? "demo.tar";
const GREETING = "hello from docker-save\n";

/** A layer tar holding the given files (text, or bytes with a mode). */
async function layerTar(
  files: Record<string, string | { data: Uint8Array; mode: number }>,
): Promise<Uint8Array> {
  return await packTar(
    Object.entries(files).map(([name, file]) => {
      const { data, mode } = typeof file === "string"
        ? { data: text(file), mode: 0o644 }
        : file;
      return { header: { name, size: data.byteLength, mode }, body: data };
    }),
  );
}

/**
 * A static linux/amd64 ELF program that writes `message` to stdout and exits
 * 0: one loadable segment (the whole file at 0x400000), then the code
 * `write(1, message, length); exit(0)` and the message. A shell or a libc
 * would make the demo image megabytes; this is 120 bytes of headers, 33 of
 * code and the text.
 */
function helloProgram(message: string): Uint8Array {
  const msg = text(message);
  const base = 0x400000;
  const headers = 64 + 56;
  // deno-fmt-ignore
  const code = [
    0xb8, 1, 0, 0, 0,               // mov eax, 1         (write)
    0xbf, 1, 0, 0, 0,               // mov edi, 1         (stdout)
    0x48, 0x8d, 0x35, 16, 0, 0, 0,  // lea rsi, [rip+16]  (the message)
    0xba, msg.byteLength, 0, 0, 0,  // mov edx, length
    0x0f, 0x05,                     // syscall
    0xb8, 60, 0, 0, 0,              // mov eax, 60        (exit)
    0x31, 0xff,                     // xor edi, edi
    0x0f, 0x05,                     // syscall
  ];
  const size = headers + code.length + msg.byteLength;
  const elf = new Uint8Array(size);
  const view = new DataView(elf.buffer);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]); // ELF, 64-bit, little-endian
  view.setUint16(16, 2, true); // e_type: executable
  view.setUint16(18, 0x3e, true); // e_machine: x86-64
  view.setUint32(20, 1, true); // e_version
  view.setBigUint64(24, BigInt(base + headers), true); // e_entry
  view.setBigUint64(32, 64n, true); // e_phoff
  view.setUint16(52, 64, true); // e_ehsize
  view.setUint16(54, 56, true); // e_phentsize
  view.setUint16(56, 1, true); // e_phnum
  view.setUint32(64, 1, true); // p_type: PT_LOAD
  view.setUint32(68, 5, true); // p_flags: read, execute
  view.setBigUint64(80, BigInt(base), true); // p_vaddr
  view.setBigUint64(88, BigInt(base), true); // p_paddr
  view.setBigUint64(96, BigInt(size), true); // p_filesz
  view.setBigUint64(104, BigInt(size), true); // p_memsz
  view.setBigUint64(112, 0x1000n, true); // p_align
  elf.set(code, headers);
  elf.set(msg, headers + code.length);
  return elf;
}

const image = await buildImage({
  compression: "gzip",
  mediaTypes: "docker",
  layers: [
    await layerTar({
      "etc/os-release": 'NAME="docker-save demo"\n',
      "etc/motd": "Saved by docker-save.\n",
    }),
    await layerTar({ hello: { data: helloProgram(GREETING), mode: 0o755 } }),
  ],
  config: {
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/hello"], Env: ["PATH=/usr/bin:/bin"] },
    created: "2024-01-01T00:00:00Z",
    history: [
      { created: "2024-01-01T00:00:00Z", created_by: "ADD rootfs /" },
      {
        created: "2024-01-01T00:00:00Z",
        created_by: 'ENV GREETING="héllo"',
        empty_layer: true,
      },
      { created: "2024-01-01T00:00:00Z", created_by: "COPY hello /hello" },
    ],
  },
});

await saveToFile(OUT, [["docker-save/demo:latest", image]]);

const bytes = await readFile(OUT);
console.log(
  `${OUT}: ${bytes.byteLength} bytes, sha256 ${
    createHash("sha256").update(bytes).digest("hex")
  }`,
);
for (const { header, data } of await unpackTar(bytes)) {
  console.log(`  ${String(header.size).padStart(6)}  ${header.name}`);
  if (header.name === "manifest.json" || header.name === "repositories") {
    console.log(`          ${new TextDecoder().decode(data)}`);
  }
}
console.log(`Load it with: docker load -i ${OUT}`);
console.log(
  "Run it with:  docker run --rm docker-save/demo   (prints a greeting; linux/amd64)",
);
