/**
 * saveToFile(): the same bytes as save(), each layer read once even where
 * its uncompressed size is not known up front (the header is reserved and
 * patched), nothing left behind on failure or abort, and the file on disk
 * (fsync, checked with strace: skipped without it, failed on CI) before it
 * is renamed into place.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { DockerSaveError, save, saveToFile } from "../../mod.ts";
import type { SaveOptions } from "../../mod.ts";
import { readAll } from "../_kit/bytes.ts";
import { withTemp } from "../_kit/cleanup.ts";
import { flipByteAt, gzipLayer, MiB, testImage } from "../_kit/generated.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { runtimeCommand } from "../_kit/processes.ts";
import { sleep } from "../_kit/time.ts";
import { writeFileAtomic } from "../../src/save/to_file.ts";

const FORMATS = ["docker", "oci", "docker+oci"] as const;
const MODES = ["uncompressed", "compressed"] as const;

for (const golden of goldenCases()) {
  test(`saveToFile() writes the bytes save() streams for golden "${golden.name}", every format and layer mode`, async () => {
    await withTemp("save-to-file-", async (dir) => {
      for (const format of FORMATS) {
        for (const layers of MODES) {
          const options: SaveOptions = { format, layers };
          const path = `${dir}/${format}-${layers}.tar`;
          await saveToFile(path, await goldenEntries(golden), options);
          const streamed = await readAll(
            save(await goldenEntries(golden), options),
          );
          assert.ok(
            Buffer.from(readFileSync(path)).equals(Buffer.from(streamed)),
            `${format}, ${layers}`,
          );
          if (format === "docker" && layers === "uncompressed") {
            assert.ok(
              Buffer.from(streamed).equals(Buffer.from(golden.expected)),
            );
          }
        }
      }
      assert.equal(
        readdirSync(dir).filter((f) => f.endsWith(".tmp")).length,
        0,
      );
    });
  });
}

test("saveToFile() reads a gzip layer of unknown size once; save() reads it twice", async () => {
  const layers = [await gzipLayer(3 * MiB, 1), await gzipLayer(MiB + 7, 2)];
  await withTemp("save-to-file-", async (dir) => {
    for (const format of FORMATS) {
      const streamedImage = testImage(layers.map((layer) => ({ layer })));
      const streamed = await readAll(
        save([["app:v1", streamedImage.image]], { format }),
      );
      const fileImage = testImage(layers.map((layer) => ({ layer })));
      const path = `${dir}/${format}.tar`;
      await saveToFile(path, [["app:v1", fileImage.image]], { format });
      assert.ok(
        Buffer.from(readFileSync(path)).equals(Buffer.from(streamed)),
        format,
      );
      const opens = (image: typeof fileImage) =>
        image.stats.calls.filter((call) => call.startsWith("openLayer")).length;
      assert.equal(opens(streamedImage), 2 * layers.length, format);
      assert.equal(opens(fileImage), layers.length, format);
    }
  });
});

test("saveToFile() fails on a corrupt layer of unknown size and leaves no file", async () => {
  const layer = await gzipLayer(2 * MiB, 3);
  await withTemp("save-to-file-", async (dir) => {
    for (
      const [what, spec, code] of [
        ["flipped blob byte", { tamper: flipByteAt(layer.size - 9) }, [
          "DIGEST_MISMATCH",
          "BAD_LAYER",
        ]],
        ["wrong diff_id", { diffId: `sha256:${"0".repeat(64)}` }, [
          "DIFF_ID_MISMATCH",
        ]],
      ] as const
    ) {
      const { image } = testImage([{ layer, ...spec }]);
      const path = `${dir}/out.tar`;
      await assert.rejects(
        saveToFile(path, [["app:v1", image]]),
        (error: unknown) =>
          error instanceof DockerSaveError &&
          (code as readonly string[]).includes(error.code),
        what,
      );
      assert.deepEqual(readdirSync(dir), [], what);
    }
  });
});

/** A stream that gives one chunk and then never another. */
function stalling(): ReadableStream<Uint8Array> & { cancelled?: unknown } {
  let given = false;
  const stream: ReadableStream<Uint8Array> & { cancelled?: unknown } =
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (given) return new Promise<void>(() => {});
        given = true;
        controller.enqueue(new Uint8Array(1024));
      },
      cancel(reason) {
        stream.cancelled = reason;
      },
    }, { highWaterMark: 0 });
  return stream;
}

test("writeFileAtomic() stops on its signal: the stream is cancelled, the temporary file removed", async () => {
  await withTemp("save-to-file-", async (dir) => {
    const controller = new AbortController();
    const path = join(dir, "out.tar");
    await writeFile(path, "kept");
    const stream = stalling();
    const writing = writeFileAtomic(path, stream, {
      signal: controller.signal,
    });
    // The temporary file is there while the source stalls.
    for (let i = 0; (await readdir(dir)).length < 2; i++) {
      assert.ok(i < 100, "no temporary file appeared");
      await sleep(20);
    }
    const reason = new Error("interrupted");
    controller.abort(reason);
    await assert.rejects(writing, (error) => error === reason);
    assert.equal(stream.cancelled, reason);
    assert.deepEqual(await readdir(dir), ["out.tar"]);
    assert.equal(await readFile(path, "utf8"), "kept");
  });
});

test("writeFileAtomic() with a signal already aborted writes nothing", async () => {
  await withTemp("save-to-file-", async (dir) => {
    const reason = new Error("too late");
    await assert.rejects(
      writeFileAtomic(join(dir, "out.tar"), stalling(), {
        signal: AbortSignal.abort(reason),
      }),
      (error) => error === reason,
    );
    assert.deepEqual(await readdir(dir), []);
  });
});

// strace shows the system calls: the temporary file is fsynced before it is
// renamed. Skipped without strace, failed on CI.
const straceInstalled = spawnSync("strace", ["-V"]).status === 0;
const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const straceSkip = straceInstalled || ci ? false : "strace not installed";

test("writeFileAtomic() fsyncs the file before it renames it", {
  skip: straceSkip,
  timeout: 60_000,
}, async () => {
  assert.ok(straceInstalled, "strace is not installed");
  await withTemp("save-to-file-", async (dir) => {
    const script = join(dir, "write.mts");
    const module =
      new URL("../../src/save/to_file.ts", import.meta.url).pathname;
    await writeFile(
      script,
      `import { writeFileAtomic } from ${JSON.stringify(module)};\n` +
        `await writeFileAtomic(${
          JSON.stringify(join(dir, "out.bin"))
        }, new Blob([new Uint8Array(1 << 20)]).stream());\n`,
    );
    const command = runtimeCommand(script);
    const log = join(dir, "strace.log");
    const result = spawnSync("strace", [
      "-f",
      "-o",
      log,
      "-e",
      "trace=openat,fcntl,dup,dup2,dup3,fsync,fdatasync,rename,renameat,renameat2",
      ...command,
    ], { encoding: "utf8", cwd: new URL("../../", import.meta.url).pathname });
    assert.equal(result.status, 0, result.stderr);
    const lines = (await readFile(log, "utf8")).split("\n");
    // With threads, strace may split a call: "<unfinished ...>", then
    // "<... openat resumed>" on a later line of the same thread.
    const openedAt = lines.findIndex((line) =>
      /openat\(.*out\.bin\.[0-9a-f]+\.tmp"/.test(line)
    );
    assert.ok(openedAt >= 0, "the temporary file was not opened");
    const thread = lines[openedAt].split(" ")[0];
    const openResult = lines.slice(openedAt).find((line, i) =>
      i === 0
        ? /= \d+$/.test(line)
        : line.startsWith(`${thread} `) && line.includes("openat resumed>")
    );
    assert.ok(openResult, "the temporary file's descriptor was not found");
    // The file's descriptor, and its duplicates (Deno's node:fs keeps one).
    const fds = new Set([openResult.match(/= (\d+)$/)![1]]);
    for (const line of lines) {
      const dup = line.match(
        /(?:fcntl\((\d+), F_DUPFD(?:_CLOEXEC)?, \d+\)|dup[23]?\((\d+)[,)]).*= (\d+)$/,
      );
      if (dup && fds.has(dup[1] ?? dup[2])) fds.add(dup[3]);
    }
    const synced = lines.findIndex((line) => {
      const sync = line.match(/(?:fsync|fdatasync)\((\d+)\)\s+= 0/);
      return sync !== null && fds.has(sync[1]);
    });
    const renamed = lines.findIndex((line) =>
      /rename.*out\.bin\.[0-9a-f]+\.tmp".*out\.bin"/.test(line)
    );
    assert.ok(renamed >= 0, "the temporary file was not renamed");
    assert.ok(synced >= 0, `fds ${[...fds]} were never fsynced`);
    assert.ok(synced < renamed, "fsync came after the rename");
    assert.deepEqual((await readdir(dir)).sort(), [
      "out.bin",
      "strace.log",
      "write.mts",
    ]);
  });
});
