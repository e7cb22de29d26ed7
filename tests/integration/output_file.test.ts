/**
 * The output file of `-o` and `saveToFile()` (issue 19, defect 5; issue 20,
 * item 7): a target that is a directory, a device, a FIFO or under a missing
 * directory is refused before anything is read or fetched, in one line that
 * names the user's path (never the temporary file); a device or FIFO is
 * never replaced; the temporary file is 0600 while written, and the final
 * file keeps an existing file's mode, or gets a new file's (the umask's).
 *
 * @module
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import process from "node:process";
import { test } from "node:test";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { saveToFile } from "../../mod.ts";
import { writeFileAtomic } from "../../src/save/to_file.ts";
import { Cleanup, tempDir, withCleanup } from "../_kit/cleanup.ts";
import { imageContent, startFakeRegistry } from "../_kit/fake_registry.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";
import { makeParts } from "../_kit/images.ts";
import { runCli } from "../_kit/processes.ts";
import { layerTar } from "../_kit/tar.ts";

const [basic] = goldenCases().filter((c) => c.name === "basic");

/** A registry serving one image, counting requests. */
async function registryImage(cleanup: Cleanup) {
  const parts = makeParts({ layers: [await layerTar({ "a.txt": "a" })] });
  const registry = await startFakeRegistry(
    cleanup,
    imageContent("t/app", "v1", parts),
  );
  return { registry, ref: `${registry.host}/t/app:v1` };
}

/**
 * A character device to write onto: a fresh one (`mknod`, as root), else
 * `/dev/null` (which a user other than root cannot replace).
 */
function characterDevice(dir: string): string {
  try {
    execFileSync("mknod", [`${dir}/null`, "c", "1", "3"], { stdio: "ignore" });
    return `${dir}/null`;
  } catch {
    return "/dev/null";
  }
}

withCleanup(
  "cli -o refuses a directory, a missing directory, a device and a FIFO before any request, naming the path",
  async (cleanup) => {
    const { registry, ref } = await registryImage(cleanup);
    const dir = await tempDir(cleanup, "out");
    await mkdir(`${dir}/adir`);
    execFileSync("mkfifo", [`${dir}/fifo`]);
    const device = characterDevice(dir);
    const cases: [string, string][] = [
      [`${dir}/adir`, "it is a directory"],
      [
        `${dir}/missing/e.tar`,
        `its directory "${dir}/missing" does not exist`,
      ],
      [device, "it is a device, not a regular file"],
      [`${dir}/fifo`, "it is a FIFO, not a regular file"],
    ];
    for (const [path, reason] of cases) {
      const result = await runCli(["-o", path, ref]);
      assert.equal(
        result.stderr,
        `docker-save: Cannot write "${path}": ${reason}\n`,
      );
      assert.equal(result.code, 1);
    }
    assert.deepEqual(registry.requests, [], "nothing was fetched");
    // Nothing replaced, nothing left beside them.
    assert.ok((await stat(`${dir}/fifo`)).isFIFO());
    assert.ok((await stat(device)).isCharacterDevice());
    assert.ok((await stat(`${dir}/adir`)).isDirectory());
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.endsWith(".tmp")),
      [],
    );
  },
);

withCleanup(
  "saveToFile() keeps an existing file's mode and gives a new file the umask's",
  async (cleanup) => {
    const dir = await tempDir(cleanup, "mode");
    // Existing, private: stays private (it became 0644).
    const existing = `${dir}/private.tar`;
    await writeFile(existing, "old", { mode: 0o600 });
    await saveToFile(existing, await goldenEntries(basic));
    assert.equal((await stat(existing)).mode & 0o777, 0o600);
    assert.ok(Buffer.from(basic.expected).equals(await readFile(existing)));
    // Existing, group-writable: kept too.
    const shared = `${dir}/shared.tar`;
    await writeFile(shared, "old");
    execFileSync("chmod", ["0664", shared]);
    await saveToFile(shared, await goldenEntries(basic));
    assert.equal((await stat(shared)).mode & 0o777, 0o664);
    // New: the mode any new file gets here (0666 less the umask).
    const plain = `${dir}/plain`;
    await writeFile(plain, "");
    const created = `${dir}/new.tar`;
    await saveToFile(created, await goldenEntries(basic));
    assert.equal(
      (await stat(created)).mode & 0o777,
      (await stat(plain)).mode & 0o777,
    );
  },
);

withCleanup(
  "writeFileAtomic() writes its temporary file 0600",
  async (cleanup) => {
    const dir = await tempDir(cleanup, "mode");
    let seen: number | undefined;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const [temp] = (await readdir(dir)).filter((f) => f.endsWith(".tmp"));
        seen = (await stat(`${dir}/${temp}`)).mode & 0o777;
        controller.enqueue(new Uint8Array(4));
        controller.close();
      },
    }, { highWaterMark: 0 });
    await writeFileAtomic(`${dir}/out.bin`, stream);
    assert.equal(seen, 0o600);
  },
);

test("cli -o refuses a directory it may not write in, before any request", {
  skip: process.getuid?.() === 0 && "root may write anywhere",
}, async () => {
  const cleanup = new Cleanup();
  try {
    const { registry, ref } = await registryImage(cleanup);
    const dir = await tempDir(cleanup, "out");
    await mkdir(`${dir}/locked`, { mode: 0o500 });
    const result = await runCli(["-o", `${dir}/locked/out.tar`, ref]);
    assert.equal(
      result.stderr,
      `docker-save: Cannot write "${dir}/locked/out.tar": its directory "${dir}/locked" is not writable (EACCES)\n`,
    );
    assert.equal(result.code, 1);
    assert.deepEqual(registry.requests, []);
  } finally {
    await cleanup.close();
  }
});
