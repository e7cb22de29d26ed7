/**
 * The CLI's live progress view as a person sees it: the CLI runs in a
 * pseudo-terminal (util-linux `script`), pulls a three-layer image from a
 * registry on loopback, and every frame drawn on the terminal is checked
 * against the tarball it wrote: one total that never moves (the bytes of the
 * layer members), rows in those bytes, and an end state that says
 * `done`, `interrupted` or `failed` with no ETA left behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { bytes } from "../../src/cli/progress_view.ts";
import { type Cleanup, tempDir, withCleanup } from "../_kit/cleanup.ts";
import {
  type FakeAnswer,
  type FakeRequest,
  startFakeRegistry,
} from "../_kit/fake_registry.ts";
import { buildGzipImage, type Built, payload } from "../_kit/images.ts";
import { runtimeCommand } from "../_kit/processes.ts";
import { readTar } from "../_kit/tar.ts";
import { screenOf } from "../_kit/terminal.ts";

const MiB = 1024 * 1024;
const CI = process.env.CI === "true";
const hasScript = spawnSync("script", ["--version"]).status === 0;
const skip = !hasScript && !CI ? "util-linux script is not installed" : false;
const ROOT = new URL("../../", import.meta.url).pathname;

// Three layers whose compressed and uncompressed sizes differ a lot (zeros)
// or little (noise): a view that shows blob sizes cannot pass for the tar's.
let built: Promise<Built> | undefined;
function image(): Promise<Built> {
  return built ??= buildGzipImage({
    files: [
      [["zeros", new Uint8Array(12 * MiB)]],
      [["noise", payload(MiB, 7)]],
      [["more-zeros", new Uint8Array(6 * MiB)]],
    ],
  });
}

interface Terminal {
  /** Everything drawn on the terminal. */
  screen: () => string;
  /** Types on the terminal's keyboard. */
  type: (text: string) => void;
  exited: Promise<number>;
}

// The CLI on a pseudo-terminal, its stdout redirected to `stdout` (a
// tarball is never written to a terminal).
function onTerminal(
  cleanup: Cleanup,
  args: string[],
  stdout: string,
): Terminal {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [...runtimeCommand(), ...args].map(quote).join(" ") +
    ` > ${quote(stdout)}`;
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DOCKER_CONFIG: "/nonexistent",
      COLUMNS: "120",
      LINES: "40",
    },
    stdio: ["pipe", "pipe", "inherit"],
  });
  let screen = "";
  child.stdout!.on("data", (chunk: Buffer) => screen += chunk.toString());
  const exited = new Promise<number>((resolve) =>
    child.on("close", (code) => resolve(code ?? 1))
  );
  cleanup.add(async () => {
    child.stdin!.end();
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  });
  return {
    screen: () => screen,
    type: (text) => child.stdin!.write(text),
    exited,
  };
}

/** One drawing of the live view: its rows, then the total line. */
interface Frame {
  rows: string[];
  total: string;
}

// The live view redraws by moving the cursor up over its last frame
// (`ESC [ n F`) and clearing each line (`ESC [ 2 K`).
function frames(screen: string): { frames: Frame[]; after: string[] } {
  // The terminal's escape sequences, on purpose.
  // deno-lint-ignore no-control-regex
  const parts = screen.replaceAll("\r", "").split(/\x1b\[\d+F/);
  const found: Frame[] = [];
  let after: string[] = [];
  for (const part of parts) {
    const lines = part.split("\n").filter((line) => line !== "");
    const drawn = lines.filter((line) => line.startsWith("\x1b[2K"))
      .map((line) => line.slice(4));
    const total = drawn.findIndex((line) => line.startsWith("total"));
    if (total < 0) continue;
    found.push({ rows: drawn.slice(0, total), total: drawn[total] });
    after = drawn.slice(total + 1).concat(
      lines.filter((line) => !line.startsWith("\x1b[2K")),
    );
  }
  return { frames: found, after };
}

// The CLI saving `source` on a terminal, to `-o FILE` unless `toStdout`.
async function saveOnTerminal(
  cleanup: Cleanup,
  args: string[],
  toStdout = false,
): Promise<Terminal & { tarball: () => Uint8Array }> {
  const dir = await tempDir(cleanup, "tty");
  const file = join(dir, "out.tar");
  const stdout = join(dir, "stdout");
  const terminal = onTerminal(
    cleanup,
    toStdout ? args : [...args, "-o", file],
    stdout,
  );
  return { ...terminal, tarball: () => readFileSync(toStdout ? stdout : file) };
}

// The last frame, which must say how the save ended and give no ETA, and
// the lines printed after it.
function endOf(screen: string, outcome: string) {
  const { frames: all, after } = frames(screen);
  const last = all.at(-1)!;
  assert.match(last.total, new RegExp(`^total +${outcome} `), last.total);
  assert.doesNotMatch(last.total, /ETA/);
  return { last, said: (text: string) => after.join("\n").includes(text) };
}

async function registryFor(
  cleanup: Cleanup,
  answer?: (request: FakeRequest, built: Built) => FakeAnswer | undefined,
) {
  const b = await image();
  const registry = await startFakeRegistry(cleanup, {
    repository: "t/app",
    manifests: {
      v1: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        body: b.manifest,
      },
    },
    blobs: {
      ...Object.fromEntries(b.layers.map((l) => [l.digest, l.blob])),
      [JSON.parse(new TextDecoder().decode(b.manifest)).config.digest]:
        b.config,
    },
    answer: answer && ((request) => answer(request, b)),
  });
  return { built: b, source: `${registry.host}/t/app:v1` };
}

// What every frame of a save must show: the total is the layer bytes of the
// tarball from the first frame on (`counted`: or a lower bound, marked `≥`,
// while sizes are counted), each row counts toward its layer's member size,
// and a blob's (compressed) size appears only on a row labelled counting.
function assertTruthful(
  all: Frame[],
  built: Built,
  tarball: Uint8Array,
  counted = false,
) {
  return readTar(tarball).then((members) => {
    const tars = members.filter((m) => m.name.endsWith("/layer.tar"));
    assert.equal(tars.length, built.layers.length);
    const layerBytes = tars.reduce((sum, m) => sum + m.data.byteLength, 0);
    assert.ok(all.length >= 1, "the live view was drawn");
    for (const frame of all) {
      // Exact, or (while a size is still to be counted) a lower bound.
      const total = / [\d.]+ [KMG]?i?B\/(≥?)([\d.]+ [KMG]?i?B) /.exec(
        frame.total,
      );
      assert.ok(total, frame.total);
      if (total[1] === "" || !counted) {
        assert.equal(
          total[2],
          bytes(layerBytes),
          `every frame's total is the tarball's layer bytes: ${frame.total}`,
        );
      } else assert.ok(parseFloat(total[2]) <= layerBytes / MiB, frame.total);
      for (const row of frame.rows) {
        const layer = built.layers.find((l) =>
          row.startsWith(l.digest.slice(7, 19))
        );
        assert.ok(layer, `a row per layer: ${row}`);
        if (/ counting /.test(row)) {
          // The blob, labelled as such.
          assert.ok(row.includes(`/${bytes(layer.blob.byteLength)} `), row);
          continue;
        }
        if (counted && row.includes("/? ")) continue; // not counted yet
        assert.ok(
          row.includes(`/${bytes(layer.tar.byteLength)} `),
          `row in its member's bytes (${bytes(layer.tar.byteLength)}): ${row}`,
        );
      }
    }
    const last = all.at(-1)!;
    assert.match(last.total, /^total +done /);
    assert.doesNotMatch(last.total, /ETA/);
    for (const row of last.rows) assert.match(row, / done /);
  });
}

for (const [mode, extra] of [["-o FILE", true], ["stdout", false]] as const) {
  withCleanup(
    `progress on a terminal (${mode}): one stable total, rows in the tarball's bytes`,
    async (cleanup) => {
      if (skip) return;
      const { built, source } = await registryFor(cleanup);
      const terminal = await saveOnTerminal(cleanup, [source], !extra);
      assert.equal(await terminal.exited, 0, terminal.screen());
      const tarball = terminal.tarball();
      await assertTruthful(frames(terminal.screen()).frames, built, tarball);
    },
  );
}

withCleanup(
  "progress on a terminal: a counting pass is labelled and the total stays the tarball's",
  async (cleanup) => {
    if (skip) return;
    const { built, source } = await registryFor(cleanup);
    const terminal = await saveOnTerminal(
      cleanup,
      [source, "--uncompressed-sizes", "count"],
      true,
    );
    assert.equal(await terminal.exited, 0, terminal.screen());
    const all = frames(terminal.screen()).frames;
    await assertTruthful(all, built, terminal.tarball(), true);
  },
);

withCleanup(
  "progress on a terminal: Ctrl-C ends the view as interrupted, no ETA",
  async (cleanup) => {
    if (skip) return;
    let stalled!: () => void;
    const reached = new Promise<void>((resolve) => stalled = resolve);
    const { source, built: b } = await registryFor(cleanup, (request, b) => {
      // The first layer's blob: half of it, then nothing.
      if (
        request.method === "GET" && !request.range &&
        request.path.endsWith(b.layers[0].digest)
      ) {
        stalled();
        return { body: b.layers[0].blob, stallAfter: 4096 };
      }
    });
    const terminal = await saveOnTerminal(cleanup, [source]);
    await reached;
    // Until the view shows the stalled layer being written.
    const stalledRow = () =>
      frames(terminal.screen()).frames.at(-1)?.rows.find((row) =>
        row.startsWith(b.layers[0].digest.slice(7, 19))
      );
    while (!/ writing /.test(stalledRow() ?? "")) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    terminal.type("\x03");
    assert.equal(await terminal.exited, 130, terminal.screen());
    const { last, said } = endOf(terminal.screen(), "interrupted");
    const first = last.rows.find((row) =>
      row.startsWith(b.layers[0].digest.slice(7, 19))
    )!;
    assert.match(first, / interrupted /, first);
    // A row done is done whole (the top layers are written first).
    for (const row of last.rows) {
      const done = / done +([\d.]+ [KMG]?i?B)\/([\d.]+ [KMG]?i?B) /.exec(row);
      if (done) assert.equal(done[1], done[2], row);
    }
    assert.ok(said("docker-save: interrupted by SIGINT"), terminal.screen());
  },
);

withCleanup(
  "progress on a terminal: a failed save ends the view as failed, no ETA",
  async (cleanup) => {
    if (skip) return;
    const { source } = await registryFor(cleanup, (request, b) => {
      // The second layer's blob, one byte changed: its digest (or its
      // gunzip) fails.
      if (
        request.method === "GET" && !request.range &&
        request.path.endsWith(b.layers[1].digest)
      ) {
        const body = b.layers[1].blob.slice();
        body[100] ^= 1;
        return { body };
      }
    });
    const terminal = await saveOnTerminal(cleanup, [source]);
    assert.equal(await terminal.exited, 1, terminal.screen());
    const { last, said } = endOf(terminal.screen(), "failed");
    for (const row of last.rows) {
      assert.match(row, / (done|failed|waiting) /, row);
    }
    assert.ok(said("docker-save: Cannot "), terminal.screen());
  },
);

withCleanup(
  "progress on a terminal: a registry retry is printed above the live rows",
  async (cleanup) => {
    if (skip) return;
    let failed = 0;
    const { built, source } = await registryFor(cleanup, (request, b) => {
      // The layer written last (the docker format writes the top layer
      // first), once: its retry comes while the view is drawn.
      if (
        request.method === "GET" && !request.range &&
        request.path.endsWith(b.layers[0].digest) && failed++ === 0
      ) return { status: 503, body: "busy" };
    });
    const terminal = await saveOnTerminal(cleanup, [
      source,
      "--concurrency",
      "1",
    ]);
    assert.equal(await terminal.exited, 0, terminal.screen());
    assert.equal(failed, 2, "the blob was asked again");
    const screen = screenOf(terminal.screen());
    const retry = new RegExp(
      `^docker-save: .*${
        built.layers[0].digest.slice(7, 19)
      }.*: status 503; retry 1 of 5 in \\d+\\.\\d s$`,
    );
    // What a person sees at the end: the retry line, then the whole view.
    assert.equal(screen.length, 1 + built.layers.length + 1, screen.join("\n"));
    assert.match(screen[0], retry, screen.join("\n"));
    for (const row of screen.slice(1, -1)) assert.match(row, / done /);
    assert.match(screen.at(-1)!, /^total +done /);
  },
);
