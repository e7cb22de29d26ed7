/**
 * Throughput and peak-RSS benchmark of the `docker-save` CLI on Node, Deno
 * and Bun, against simple baselines (`cat`, `zcat`, `sha256sum`) and Debian's
 * `skopeo copy … docker-archive:`.
 *
 * ```sh
 * node --import tsx bench/save.bench.ts [--sizes 256,1024] [--runs 3] \
 *   [--runtimes node,deno,bun[,node-tsx]] [--modes uncompressed,compressed] \
 *   [--out bench/results.md [--append]] [--no-skopeo] [--no-baselines] \
 *   [--live]
 * ```
 *
 * The CLI runs from a snapshot of the sources (mod.ts, src/, package.json,
 * deno.json, node_modules linked) copied to /tmp/docker-save-bench/snapshot/
 * and checked end to end on a 1 MiB image on every runtime first, so that
 * edits made to the work tree while the benchmark runs cannot mix versions
 * (the snapshot is retaken until it passes). `--live` runs the work tree.
 *
 * Fixtures: one OCI image layout per size, cached under
 * /tmp/docker-save-bench/<size>MiB/ and generated only when missing. Its one
 * layer is a tar (written with our `tarStream`) holding one file of exactly
 * <size> MiB, alternating 1 MiB blocks of `randomBytes` and of repetitive
 * text, gzipped with node:zlib at level 6 (the gzip/Go/Docker default) and
 * hashed (diff_id and digest) on the fly; nothing is held in memory.
 *
 * Every timed command runs under `/usr/bin/time -f '%e %M'`; its output goes
 * to /tmp/docker-save-bench/, deleted after each run. Medians are taken per
 * row. The blob is read once before timing (page cache warm), and each
 * runtime runs `--help` once untimed (transpile caches warm; that run's peak
 * RSS is reported as the runtime's floor).
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { tarSize, tarStream } from "../src/save/tar_writer.ts";

const MiB = 1024 * 1024;
const GZIP_LEVEL = 6;
const ROOT = "/tmp/docker-save-bench";
const OUT_TAR = join(ROOT, "out.tar");
const OUT_BIN = join(ROOT, "out.bin");
const SKOPEO_TAR = join(ROOT, "skopeo.tar");
const SKOPEO_TMP = join(ROOT, "skopeo-tmp");
const TIME_FILE = join(ROOT, "time.txt");
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TAG = "bench/x:1";
const RSS_TARGET_MIB = 100;
const FILE_NAME = "bench.bin";

type Mode = "uncompressed" | "compressed";
/**
 * `node` runs the npm package's built CLI (`dist/bin/docker-save.js`, from
 * `npm run build`) with plain Node, as npm users do. `node-tsx` is opt-in:
 * the TypeScript sources through tsx, whose loader-hooks thread alone costs
 * ~35 MiB of RSS.
 */
type Runtime = "node" | "deno" | "bun" | "node-tsx";
const RUNTIMES: Runtime[] = ["node", "deno", "bun", "node-tsx"];
const SNAPSHOT = join(ROOT, "snapshot");
/** Where the CLI runs from: the snapshot, or the work tree with --live. */
let cliDir = REPO;

interface Options {
  sizes: number[];
  runs: number;
  runtimes: Runtime[];
  modes: Mode[];
  out?: string;
  append: boolean;
  skopeo: boolean;
  baselines: boolean;
  /** Run the CLI in the work tree rather than in a checked snapshot. */
  live: boolean;
}

// ---------------------------------------------------------------- arguments

function parseOptions(argv: string[]): Options {
  const options: Options = {
    sizes: [256, 1024],
    runs: 3,
    runtimes: ["node", "deno", "bun"],
    modes: ["uncompressed", "compressed"],
    append: false,
    skopeo: true,
    baselines: true,
    live: false,
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const take = () => {
      const v = value ?? argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const list = () => take().split(",").map((s) => s.trim()).filter(Boolean);
    switch (arg) {
      case "--sizes":
        options.sizes = list().map((s) => {
          const n = Number(s);
          if (!Number.isInteger(n) || n <= 0) usage(`bad size "${s}"`);
          return n;
        });
        break;
      case "--runs":
        options.runs = Number(take());
        if (!Number.isInteger(options.runs) || options.runs < 1) {
          usage("--runs takes a positive integer");
        }
        break;
      case "--runtimes":
        options.runtimes = list().map((r) => {
          if (!RUNTIMES.includes(r as Runtime)) {
            usage(`unknown runtime "${r}"`);
          }
          return r as Runtime;
        });
        break;
      case "--modes":
        options.modes = list().map((m) => {
          if (m !== "uncompressed" && m !== "compressed") {
            usage(`unknown mode "${m}"`);
          }
          return m as Mode;
        });
        break;
      case "--out":
        options.out = take();
        break;
      case "--append":
        options.append = true;
        break;
      case "--no-skopeo":
        options.skopeo = false;
        break;
      case "--no-baselines":
        options.baselines = false;
        break;
      case "--live":
        options.live = true;
        break;
      case "-h":
      case "--help":
        console.log(
          "node --import tsx bench/save.bench.ts [--sizes 256,1024] [--runs 3] " +
            "[--runtimes node,deno,bun[,node-tsx]] [--modes uncompressed,compressed] " +
            "[--out FILE [--append]] [--no-skopeo] [--no-baselines] [--live]",
        );
        process.exit(0);
        break;
      default:
        usage(`unknown argument "${argv[i]}"`);
    }
  }
  return options;
}

function usage(message: string): never {
  console.error(`save.bench: ${message} (see --help)`);
  process.exit(2);
}

function log(message: string): void {
  process.stderr.write(`[bench ${clock()}] ${message}\n`);
}

const benchStart = performance.now();
function clock(): string {
  const s = (performance.now() - benchStart) / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

// ----------------------------------------------------------------- fixtures

interface Fixture {
  sizeMiB: number;
  dir: string;
  blobPath: string;
  /** Compressed blob bytes. */
  blobBytes: number;
  /** Uncompressed layer tar bytes. */
  tarBytes: number;
  digest: string;
  diffId: string;
  gzipLevel: number;
  /** Seconds the generation took (when it was generated). */
  generatedSeconds?: number;
  /** True when generated by this invocation. */
  fresh: boolean;
}

/** 1 MiB of repetitive text, shared by every text block. */
function textBlock(): Uint8Array {
  let text = "";
  for (let line = 0; text.length < MiB; line++) {
    text += `line ${
      line % 1000
    }: the quick brown fox jumps over the lazy dog; docker-save bench\n`;
  }
  return new TextEncoder().encode(text.slice(0, MiB));
}

function hashingTap(
  hash: ReturnType<typeof createHash>,
  onBytes: (n: number) => void,
): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}

async function ensureFixture(sizeMiB: number): Promise<Fixture> {
  const dir = join(ROOT, `${sizeMiB}MiB`);
  const metaPath = join(dir, "bench-meta.json");
  if (existsSync(metaPath)) {
    const meta = JSON.parse(readFileSync(metaPath, "utf8")) as Fixture;
    if (
      existsSync(meta.blobPath) &&
      statSync(meta.blobPath).size === meta.blobBytes
    ) {
      log(`fixture ${sizeMiB} MiB: cached in ${dir}`);
      return { ...meta, fresh: false };
    }
  }
  rmSync(dir, { recursive: true, force: true });
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(join(partial, "blobs", "sha256"), { recursive: true });
  log(
    `fixture ${sizeMiB} MiB: generating (half randomBytes, half text, gzip level ${GZIP_LEVEL})`,
  );
  const started = performance.now();

  const fileSize = sizeMiB * MiB;
  const text = textBlock();
  let produced = 0;
  let block = 0;
  const body = () =>
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (produced >= fileSize) return controller.close();
        const n = Math.min(MiB, fileSize - produced);
        const bytes = block++ % 2 === 0
          ? new Uint8Array(randomBytes(n))
          : text.subarray(0, n);
        produced += n;
        controller.enqueue(bytes);
      },
    }, { highWaterMark: 0 });
  const entries = [{ name: FILE_NAME, size: fileSize, body }];
  const expectedTarBytes = tarSize(entries);

  const diffHash = createHash("sha256");
  const blobHash = createHash("sha256");
  let tarBytes = 0;
  let blobBytes = 0;
  let nextReport = 256 * MiB;
  const blobTemp = join(partial, "blob.partial");
  await pipeline(
    Readable.fromWeb(
      tarStream(entries) as import("node:stream/web").ReadableStream<
        Uint8Array
      >,
    ),
    hashingTap(diffHash, (n) => {
      tarBytes += n;
      if (tarBytes >= nextReport) {
        const s = (performance.now() - started) / 1000;
        log(
          `fixture ${sizeMiB} MiB: ${Math.round(tarBytes / MiB)}/${
            Math.round(expectedTarBytes / MiB)
          } MiB (${(100 * tarBytes / expectedTarBytes).toFixed(0)}%), ${
            s.toFixed(1)
          } s, ${(tarBytes / 1e6 / s).toFixed(0)} MB/s`,
        );
        nextReport += 256 * MiB;
      }
    }),
    createGzip({ level: GZIP_LEVEL }),
    hashingTap(blobHash, (n) => (blobBytes += n)),
    createWriteStream(blobTemp),
  );
  if (tarBytes !== expectedTarBytes) {
    throw new Error(`tar has ${tarBytes} bytes, expected ${expectedTarBytes}`);
  }
  const diffId = `sha256:${diffHash.digest("hex")}`;
  const digest = `sha256:${blobHash.digest("hex")}`;
  renameSync(blobTemp, join(partial, "blobs", "sha256", digest.slice(7)));

  const writeBlob = (bytes: Uint8Array): { digest: string; size: number } => {
    const hex = createHash("sha256").update(bytes).digest("hex");
    writeFileSync(join(partial, "blobs", "sha256", hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const json = (value: unknown) =>
    new TextEncoder().encode(JSON.stringify(value));
  const created = "2024-01-01T00:00:00Z";
  const config = writeBlob(json({
    architecture: "amd64",
    os: "linux",
    created,
    config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"] },
    rootfs: { type: "layers", diff_ids: [diffId] },
    history: [{
      created,
      created_by: `docker-save bench: ${sizeMiB} MiB, half random`,
    }],
  }));
  const manifest = writeBlob(json({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      ...config,
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest,
      size: blobBytes,
    }],
  }));
  writeFileSync(
    join(partial, "index.json"),
    json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "bench" },
      }],
    }),
  );
  writeFileSync(
    join(partial, "oci-layout"),
    json({ imageLayoutVersion: "1.0.0" }),
  );
  const generatedSeconds = (performance.now() - started) / 1000;
  const fixture: Fixture = {
    sizeMiB,
    dir,
    blobPath: join(dir, "blobs", "sha256", digest.slice(7)),
    blobBytes,
    tarBytes,
    digest,
    diffId,
    gzipLevel: GZIP_LEVEL,
    generatedSeconds,
    fresh: true,
  };
  writeFileSync(
    join(partial, "bench-meta.json"),
    JSON.stringify(fixture, null, 2),
  );
  renameSync(partial, dir);
  log(
    `fixture ${sizeMiB} MiB: done in ${
      generatedSeconds.toFixed(1)
    } s; tar ${tarBytes} B, blob ${blobBytes} B`,
  );
  return fixture;
}

// ------------------------------------------------------------------ running

interface RunResult {
  ok: boolean;
  /** Wall seconds, from GNU time's %e. */
  wall: number;
  /** Wall seconds measured here around the child (ms resolution). */
  wallPrecise: number;
  rssKiB: number;
  /** User + system CPU seconds (%U + %S). */
  cpu: number;
  outputBytes?: number;
  error?: string;
}

/**
 * Runs `argv` under `/usr/bin/time -f '%e %M'`, stdout to `stdoutPath` (or
 * discarded), in the repo. `outputPath` is stat-ed for its size afterwards.
 */
function timed(
  argv: string[],
  opts: { stdoutPath?: string; outputPath?: string; env?: NodeJS.ProcessEnv },
): RunResult {
  rmSync(TIME_FILE, { force: true });
  const stdoutFd = opts.stdoutPath ? openSync(opts.stdoutPath, "w") : "ignore";
  const started = performance.now();
  const child = spawnSync(
    "/usr/bin/time",
    ["-f", "%e %M %U %S", "-o", TIME_FILE, ...argv],
    {
      cwd: cliDir,
      stdio: ["ignore", stdoutFd, "pipe"],
      env: opts.env ?? process.env,
      maxBuffer: 64 * MiB,
    },
  );
  const wallPrecise = (performance.now() - started) / 1000;
  if (typeof stdoutFd === "number") closeSync(stdoutFd);
  const timeText = existsSync(TIME_FILE) ? readFileSync(TIME_FILE, "utf8") : "";
  // time writes "Command exited with non-zero status N" before the numbers.
  const last = timeText.trim().split("\n").pop() ?? "";
  const [wallText, rssText, userText, sysText] = last.split(" ");
  const result: RunResult = {
    ok: child.status === 0,
    wall: Number(wallText),
    wallPrecise,
    rssKiB: Number(rssText),
    cpu: Number(userText) + Number(sysText),
  };
  if (opts.outputPath && existsSync(opts.outputPath)) {
    result.outputBytes = statSync(opts.outputPath).size;
  }
  if (!result.ok) {
    const stderr = child.stderr?.toString().trim() ?? "";
    result.error = `exit ${child.status ?? child.signal}: ${
      stderr.split("\n").slice(-3).join(" | ").slice(0, 400)
    }`;
  }
  return result;
}

function cleanOutputs(): void {
  rmSync(OUT_TAR, { force: true });
  rmSync(OUT_BIN, { force: true });
  rmSync(SKOPEO_TAR, { force: true });
  rmSync(SKOPEO_TMP, { recursive: true, force: true });
  for (const name of readdirSync(ROOT)) {
    if (name.startsWith("out.tar.") && name.endsWith(".tmp")) {
      rmSync(join(ROOT, name), { force: true });
    }
  }
}

function runtimeArgv(runtime: Runtime): string[] {
  switch (runtime) {
    case "node":
      // The npm bin as npm users run it: its shebang caps V8's young
      // generation (--max-semi-space-size=1).
      return [join(REPO, "dist/bin/docker-save.js")];
    case "node-tsx":
      return [process.execPath, "--import", "tsx", "src/cli.ts"];
    case "deno":
      // As the `deno task cli` runs it.
      return [
        join(REPO, "node_modules/.bin/deno"),
        "run",
        "--v8-flags=--max-semi-space-size=1",
        "-A",
        "src/cli.ts",
      ];
    case "bun":
      return [join(REPO, "node_modules/.bin/bun"), "src/cli.ts"];
  }
}

// The npm build of the work tree (what `node` runs).
function buildDist(): void {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "scripts/build.ts"],
    {
      cwd: REPO,
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  if (r.status !== 0) throw new Error("npm run build failed");
}

/** sha256 over the snapshot's file names and contents, short. */
function treeHash(dir: string): string {
  const hash = createHash("sha256");
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = join(rel, name);
      if (name === "node_modules" || name === "deno.lock") continue;
      if (statSync(join(dir, path)).isDirectory()) walk(path);
      else hash.update(`${path}\0`).update(readFileSync(join(dir, path)));
    }
  };
  walk("");
  return hash.digest("hex").slice(0, 12);
}

function takeSnapshot(): void {
  rmSync(SNAPSHOT, { recursive: true, force: true });
  mkdirSync(SNAPSHOT, { recursive: true });
  for (const name of ["mod.ts", "src", "package.json", "deno.json"]) {
    if (existsSync(join(REPO, name))) {
      cpSync(join(REPO, name), join(SNAPSHOT, name), { recursive: true });
    }
  }
  symlinkSync(join(REPO, "node_modules"), join(SNAPSHOT, "node_modules"));
}

/**
 * Takes (with `live`, just uses) the sources the CLI runs from, and checks
 * them: every runtime saves a 1 MiB image in every mode. Retakes the
 * snapshot until it passes, since others may be editing src/ meanwhile.
 */
async function prepareSources(options: Options): Promise<string> {
  const check = await ensureFixture(1);
  const source = `oci:${check.dir}:bench=${TAG}`;
  for (let attempt = 1;; attempt++) {
    if (options.live) cliDir = REPO;
    else {
      takeSnapshot();
      cliDir = SNAPSHOT;
    }
    if (options.runtimes.includes("node")) buildDist();
    const failures: string[] = [];
    for (const runtime of options.runtimes) {
      for (const mode of options.modes) {
        cleanOutputs();
        const r = timed([
          ...runtimeArgv(runtime),
          "-o",
          OUT_TAR,
          "--layers",
          mode,
          source,
        ], { outputPath: OUT_TAR });
        cleanOutputs();
        if (!r.ok) failures.push(`${runtime} ${mode}: ${r.error}`);
      }
    }
    const id = options.live
      ? `work tree ${REPO}`
      : `snapshot of ${REPO} (src tree sha256 ${treeHash(SNAPSHOT)})`;
    if (failures.length === 0) {
      log(`sources: ${id}: 1 MiB check passed on every runtime and mode`);
      return id;
    }
    log(
      `sources: ${id}: check failed (attempt ${attempt}): ${
        failures.join("; ")
      }`,
    );
    if (options.live || attempt >= 15) {
      log("sources: giving up; benchmarking them as they are");
      return `${id} — FAILED its 1 MiB check: ${failures.join("; ")}`;
    }
    await new Promise((r) => setTimeout(r, 20_000));
  }
}

function versionOf(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { cwd: REPO });
  if (r.status !== 0) return "absent";
  return r.stdout.toString().trim().split("\n")[0];
}

function hasSkopeo(): boolean {
  return spawnSync("/usr/bin/skopeo", ["--version"]).status === 0;
}

// ------------------------------------------------------------------- stats

interface Row {
  label: string;
  /** "runtime · mode" rows are ours; the others are baselines. */
  kind: "ours" | "baseline";
  mode?: Mode;
  runtime?: Runtime;
  /** What the MB/s counts. */
  throughputOf: "output" | "blob" | "layer tar";
  results: RunResult[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Summary {
  ok: boolean;
  wall: number;
  mbps: number;
  rssMiB: number;
  cpu: number;
  outputBytes?: number;
  error?: string;
}

function summarize(row: Row, fixture: Fixture): Summary {
  const good = row.results.filter((r) => r.ok);
  if (good.length === 0) {
    return {
      ok: false,
      wall: NaN,
      mbps: NaN,
      rssMiB: median(row.results.map((r) => r.rssKiB)) / 1024,
      cpu: NaN,
      error: row.results[0]?.error ?? "no run",
    };
  }
  const wall = median(good.map((r) => r.wallPrecise));
  const outputBytes = good[0].outputBytes;
  const bytes = row.throughputOf === "blob"
    ? fixture.blobBytes
    : row.throughputOf === "layer tar"
    ? fixture.tarBytes
    : outputBytes ?? fixture.tarBytes;
  return {
    ok: good.length === row.results.length,
    wall,
    mbps: bytes / 1e6 / wall,
    rssMiB: median(good.map((r) => r.rssKiB)) / 1024,
    cpu: median(good.map((r) => r.cpu)),
    outputBytes,
    error: good.length === row.results.length
      ? undefined
      : row.results.find((r) => !r.ok)?.error,
  };
}

// ------------------------------------------------------------------- report

function machineLine(): string {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const nproc = spawnSync("nproc").stdout?.toString().trim() ??
    String(os.cpus().length);
  const ram = (os.totalmem() / 1024 ** 3).toFixed(1);
  const node = process.version;
  const deno = versionOf([join(REPO, "node_modules/.bin/deno"), "--version"]);
  const bun = versionOf([join(REPO, "node_modules/.bin/bun"), "--version"]);
  const skopeo = versionOf(["/usr/bin/skopeo", "--version"]);
  return `Machine: nproc ${nproc}, CPU "${model}", RAM ${ram} GiB, kernel ${os.release()}; ` +
    `node ${node}, ${deno}, bun ${bun}, ${skopeo}. Date: ${
      new Date().toISOString()
    }.`;
}

function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(
    " / ",
  );
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "–";
}

function renderTable(
  fixture: Fixture,
  rows: Row[],
  runs: number,
  floors: Map<Runtime, number>,
  load: string,
): string {
  const summaries = new Map(rows.map((row) => [row, summarize(row, fixture)]));
  const find = (label: string) => {
    const row = rows.find((r) => r.label.startsWith(label));
    return row ? summaries.get(row) : undefined;
  };
  const cat = find("copy limit");
  const zcat = find("gunzip limit");
  const skopeo = find("skopeo");
  const lines: string[] = [];
  const mib = (b: number) => (b / MiB).toFixed(1);
  lines.push(
    `### ${fixture.sizeMiB} MiB layer`,
    "",
    `Fixture ${fixture.dir}: one layer, a tar of one ${fixture.sizeMiB} MiB file ` +
      `(alternating 1 MiB blocks of randomBytes and repetitive text), ` +
      `${fixture.tarBytes} B (${mib(fixture.tarBytes)} MiB) uncompressed, ` +
      `gzip level ${fixture.gzipLevel} → blob ${fixture.blobBytes} B (${
        mib(fixture.blobBytes)
      } MiB)` +
      (fixture.fresh
        ? `; generated in ${
          fmt(fixture.generatedSeconds ?? NaN, 1)
        } s by this run.`
        : "; cached from an earlier run.") +
      ` Medians of ${runs} run${
        runs === 1 ? "" : "s"
      }; page cache warmed once by reading the blob before timing.`,
    "",
    "| row | median wall s | MB/s (of what) | peak RSS MiB | ratio vs baseline | CPU s (user+sys) | output bytes | wall s per run | peak RSS MiB per run |",
    "| --- | ---: | --- | ---: | --- | ---: | ---: | --- | --- |",
  );
  for (const row of rows) {
    const s = summaries.get(row)!;
    let ratio = "";
    if (row.kind === "ours" && s.ok) {
      if (row.mode === "compressed" && cat?.ok) {
        ratio = `${fmt(s.mbps / cat.mbps)}× copy-limit MB/s`;
      } else if (row.mode === "uncompressed") {
        const parts: string[] = [];
        if (skopeo?.ok) parts.push(`${fmt(s.wall / skopeo.wall)}× skopeo wall`);
        if (zcat?.ok) parts.push(`${fmt(s.mbps / zcat.mbps)}× zcat MB/s`);
        ratio = parts.join("; ");
      }
    } else if (row.kind === "baseline") ratio = "(baseline)";
    let rss = fmt(s.rssMiB, 1);
    if (row.kind === "ours" && s.rssMiB >= RSS_TARGET_MIB) {
      rss = `**${rss}** ⚠ ≥ ${RSS_TARGET_MIB}`;
    }
    const what = row.throughputOf === "blob"
      ? "blob B/s"
      : row.throughputOf === "layer tar"
      ? "layer-tar B/s"
      : "output B/s";
    const perRun = row.results.map((r) => r.ok ? fmt(r.wallPrecise) : "FAIL")
      .join(" / ");
    const rssPerRun = row.results.map((r) => fmt(r.rssKiB / 1024, 0)).join(
      " / ",
    );
    const label = s.error
      ? `${row.label} — FAILED: ${s.error.replaceAll("|", "\\|")}`
      : row.label;
    lines.push(
      `| ${label} | ${fmt(s.wall)} | ${
        fmt(s.mbps, 0)
      } (${what}) | ${rss} | ${ratio} | ${fmt(s.cpu)} | ${
        s.outputBytes ?? ""
      } | ${perRun} | ${rssPerRun} |`,
    );
  }
  if (floors.size) {
    lines.push(
      "",
      `Startup floor (peak RSS of \`--help\`, untimed warm-up): ${
        [...floors].map(([r, kib]) => `${r} ${fmt(kib / 1024, 1)} MiB`).join(
          ", ",
        )
      }.`,
    );
  }
  lines.push("", `Load average (1/5/15 min) ${load}.`);
  const over = rows.filter((r) =>
    r.kind === "ours" && summaries.get(r)!.rssMiB >= RSS_TARGET_MIB
  );
  const failed = rows.filter((r) => r.kind === "ours" && !summaries.get(r)!.ok);
  lines.push(
    "",
    `Peak-RSS target (< ${RSS_TARGET_MIB} MiB on every runtime): ${
      over.length === 0
        ? "met"
        : `MISSED by ${
          over.map((r) =>
            `${r.label} (${fmt(summaries.get(r)!.rssMiB, 1)} MiB)`
          )
            .join(", ")
        }`
    }.${
      failed.length
        ? ` CLI failures: ${
          failed.map((r) => `${r.label}: ${summaries.get(r)!.error}`).join("; ")
        }.`
        : ""
    }`,
  );
  return lines.join("\n");
}

// --------------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  mkdirSync(ROOT, { recursive: true });
  cleanOutputs();
  const skopeoPresent = options.skopeo && hasSkopeo();
  if (options.skopeo && !skopeoPresent) {
    console.log(
      "skopeo not found at /usr/bin/skopeo: skipping the skopeo baseline.",
    );
  }
  const header = machineLine();
  log(header);

  const sourcesId = await prepareSources(options);
  // Warm the runtimes' transpile caches; note each runtime's RSS floor.
  const floors = new Map<Runtime, number>();
  for (const runtime of options.runtimes) {
    const r = timed([...runtimeArgv(runtime), "--help"], {});
    if (!r.ok) log(`${runtime} --help failed: ${r.error}`);
    floors.set(runtime, r.rssKiB);
  }

  const sections: string[] = [];
  for (const size of options.sizes) {
    const sizeStart = performance.now();
    const fixture = await ensureFixture(size);
    const source = `oci:${fixture.dir}:bench=${TAG}`;

    // Warm the page cache: read the blob once.
    spawnSync("cat", [fixture.blobPath], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    log(`size ${size} MiB: page cache warmed (blob read once)`);

    const loadBefore = loadavg();
    const rows: Row[] = [];
    for (const runtime of options.runtimes) {
      for (const mode of options.modes) {
        rows.push({
          label: `${runtime} · ${mode}`,
          kind: "ours",
          runtime,
          mode,
          throughputOf: mode === "compressed" ? "blob" : "output",
          results: [],
        });
      }
    }
    const baselineRows: (Row & {
      argv: string[];
      stdout?: string;
      output: string;
      env?: NodeJS.ProcessEnv;
    })[] = [];
    if (options.baselines) {
      baselineRows.push(
        {
          label: "copy limit: `cat BLOB > out.bin`",
          kind: "baseline",
          throughputOf: "blob",
          results: [],
          argv: ["cat", fixture.blobPath],
          stdout: OUT_BIN,
          output: OUT_BIN,
        },
        {
          label: "gunzip limit: `zcat BLOB > out.bin`",
          kind: "baseline",
          throughputOf: "layer tar",
          results: [],
          argv: ["zcat", fixture.blobPath],
          stdout: OUT_BIN,
          output: OUT_BIN,
        },
        {
          label: "hash limit: `sha256sum BLOB`",
          kind: "baseline",
          throughputOf: "blob",
          results: [],
          argv: ["sha256sum", fixture.blobPath],
          output: "",
        },
      );
    }
    if (skopeoPresent) {
      baselineRows.push({
        label: "skopeo copy oci: → docker-archive: (uncompressed)",
        kind: "baseline",
        throughputOf: "output",
        results: [],
        argv: [
          "/usr/bin/skopeo",
          "--insecure-policy",
          "copy",
          "-q",
          `oci:${fixture.dir}:bench`,
          `docker-archive:${SKOPEO_TAR}:${TAG}`,
        ],
        output: SKOPEO_TAR,
        env: { ...process.env, TMPDIR: SKOPEO_TMP },
      });
    }

    // Interleave: each run goes through every row once, so drift is shared.
    for (let run = 1; run <= options.runs; run++) {
      for (const row of rows) {
        cleanOutputs();
        const r = timed(
          [
            ...runtimeArgv(row.runtime!),
            "-o",
            OUT_TAR,
            "--layers",
            row.mode!,
            source,
          ],
          { outputPath: OUT_TAR },
        );
        row.results.push(r);
        cleanOutputs();
        log(
          `size ${size} run ${run}/${options.runs} ${row.label}: ${
            r.ok ? "ok" : `FAILED ${r.error}`
          } wall ${fmt(r.wallPrecise)} s (time %e ${r.wall}), peak RSS ${
            fmt(r.rssKiB / 1024, 1)
          } MiB, output ${r.outputBytes ?? "-"} B`,
        );
      }
      for (const row of baselineRows) {
        cleanOutputs();
        if (row.env) mkdirSync(SKOPEO_TMP, { recursive: true });
        const r = timed(row.argv, {
          stdoutPath: row.stdout,
          outputPath: row.output || undefined,
          env: row.env,
        });
        row.results.push(r);
        cleanOutputs();
        log(
          `size ${size} run ${run}/${options.runs} ${row.label}: ${
            r.ok ? "ok" : `FAILED ${r.error}`
          } wall ${fmt(r.wallPrecise)} s, peak RSS ${
            fmt(r.rssKiB / 1024, 1)
          } MiB, output ${r.outputBytes ?? "-"} B`,
        );
      }
    }
    const table = renderTable(
      fixture,
      [...rows, ...baselineRows],
      options.runs,
      floors,
      `before timing ${loadBefore}, after ${loadavg()} (other work on this 2-core machine inflates walls)`,
    );
    const took = (performance.now() - sizeStart) / 1000;
    sections.push(
      `${table}\n\nThis size took ${
        fmt(took, 0)
      } s (including fixture generation, if any).`,
    );
    console.log(`\n${sections.at(-1)}\n`);
  }

  const notes = [
    "Notes: MB/s = 10^6 bytes/s. Our rows run `-o /tmp/docker-save-bench/out.tar --layers MODE oci:DIR:bench=bench/x:1` with verification on (the default); " +
    "uncompressed rows count output-tarball bytes/s, compressed rows and `cat`/`sha256sum` count blob bytes/s, `zcat` counts layer-tar bytes/s. " +
    "Wall is measured around `/usr/bin/time -f '%e %M %U %S'` (which gives the peak RSS: the largest single process of the tree, as wait4 reports it); outputs are deleted after each run. " +
    "Per README, an OCI layout does not record the uncompressed size, so uncompressed mode learns it by a first streaming gunzip pass and gunzips again while writing (two inflates and two sha256 passes of CPU; zlib inflates about twice as fast as `zcat`). " +
    "With a load average above 2 on this 2-core machine the walls are inflated; the CPU column is the steadier number.",
  ];
  const command = `node --import tsx bench/save.bench.ts ${
    process.argv.slice(2).join(" ")
  }`.trim();
  const totalSeconds = (performance.now() - benchStart) / 1000;
  const document = [
    `## \`${command}\``,
    "",
    header,
    "",
    `CLI sources: ${sourcesId}.`,
    "",
    ...sections.flatMap((s) => [s, ""]),
    ...notes,
    "",
    `Whole invocation: ${fmt(totalSeconds, 0)} s.`,
    "",
  ].join("\n");
  console.log(document);
  if (options.out) {
    const path = resolve(options.out);
    mkdirSync(dirname(path), { recursive: true });
    if (options.append && existsSync(path)) {
      writeFileSync(path, `${readFileSync(path, "utf8")}\n${document}`);
    } else {writeFileSync(
        path,
        `# docker-save benchmark results\n\n${document}`,
      );}
    log(`wrote ${path}`);
  }
}

await main();
