/**
 * The real-world pull: an image of 8 gzip layers of 24 MiB random bytes
 * each, in a loopback Debian docker-registry behind a throttling proxy that
 * caps each connection at 24 MB/s (bench/_throttle_proxy.ts), as registries
 * and CDNs cap each connection. Saved by our CLI on Node (the npm bin from
 * `dist/`), Deno and Bun, and by crane 0.20 (`pull`, compressed layers) and
 * skopeo 1.22 (`copy docker:// docker-archive:`, uncompressed) from the
 * modern-loaders chroot. A tool that fetches one layer after another waits
 * for the sum (8 × 1.05 s); one that fetches N at once, about 1/N of it.
 *
 * ```sh
 * node --import tsx bench/pull8.bench.ts [--runs 3] [--runtimes node,deno,bun] \
 *   [--modes compressed,uncompressed] [--concurrency 1,3] [--sinks file,stdout] \
 *   [--layers 8] [--layer-mib 24] [--rate 24000000] [--out bench/results.md [--append]] \
 *   [--no-modern] [--live]
 * ```
 *
 * - `--concurrency 1,3` adds a row per value (our `--concurrency N`); without
 *   it our CLI runs with its default and no flag.
 * - `--sinks stdout` adds rows that write the tarball to stdout (redirected
 *   to a file) instead of `-o FILE`.
 * - Runs are interleaved (each run goes through every row once); medians
 *   per row; wall around `/usr/bin/time`, which gives the peak RSS.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { gzipSync } from "node:zlib";
import { endOfArchive, tarHeader } from "../src/save/tar_writer.ts";
import { Cleanup } from "../tests/_kit/cleanup.ts";
import { digestOf } from "../tests/_kit/digest.ts";
import { stopChild } from "../tests/_kit/processes.ts";
import { pushBlob, pushManifest } from "../tests/_kit/registry.ts";
import { cliDir, prepareSources, REPO, runtimeArgv, TAG } from "./_cli.ts";
import {
  claimScratch,
  cleanOutputs,
  elapsedSeconds,
  log,
  MiB,
  OUT_TAR,
  registerOutput,
  ROOT,
  type RunResult,
  timed,
} from "./_harness.ts";
import type { Mode, Options, Runtime } from "./_options.ts";
import { RUNTIMES } from "./_options.ts";
import {
  cleanModern,
  inModern,
  modernAbsence,
  modernPath,
  modernVersions,
} from "./_peers.ts";
import { startBenchRegistry } from "./_registry_fixture.ts";
import {
  fmt,
  loadavg,
  machineLine,
  publish,
  RSS_TARGET_MIB,
} from "./_report.ts";
import { median } from "./_stats.ts";

const REPOSITORY = "bench/x";
/** Issue 22's target: our wall at most this × the peer's. */
const TARGET_RATIO = 0.5;

interface PullOptions {
  runs: number;
  runtimes: Runtime[];
  modes: Mode[];
  concurrency: (number | undefined)[];
  sinks: ("file" | "stdout")[];
  layers: number;
  layerMiB: number;
  rate: number;
  out?: string;
  append: boolean;
  modern: boolean;
  live: boolean;
}

function parse(argv: string[]): PullOptions {
  const o: PullOptions = {
    runs: 3,
    runtimes: ["node", "deno", "bun"],
    modes: ["compressed", "uncompressed"],
    concurrency: [undefined],
    sinks: ["file"],
    layers: 8,
    layerMiB: 24,
    rate: 24_000_000,
    append: false,
    modern: true,
    live: false,
  };
  const fail = (message: string): never => {
    console.error(`pull8.bench: ${message}`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const take = () => argv[++i] ?? fail(`${arg} needs a value`);
    const list = () => take().split(",").map((s) => s.trim()).filter(Boolean);
    const positive = (text: string) => {
      const n = Number(text);
      return Number.isFinite(n) && n > 0 ? n : fail(`bad number "${text}"`);
    };
    switch (arg) {
      case "--runs":
        o.runs = positive(take());
        break;
      case "--runtimes":
        o.runtimes = list().map((r) =>
          RUNTIMES.includes(r as Runtime)
            ? r as Runtime
            : fail(`unknown runtime "${r}"`)
        );
        break;
      case "--modes":
        o.modes = list().map((m) =>
          m === "compressed" || m === "uncompressed"
            ? m
            : fail(`unknown mode "${m}"`)
        );
        break;
      case "--concurrency":
        o.concurrency = list().map(positive);
        break;
      case "--sinks":
        o.sinks = list().map((s) =>
          s === "file" || s === "stdout" ? s : fail(`unknown sink "${s}"`)
        );
        break;
      case "--layers":
        o.layers = positive(take());
        break;
      case "--layer-mib":
        o.layerMiB = positive(take());
        break;
      case "--rate":
        o.rate = positive(take());
        break;
      case "--out":
        o.out = take();
        break;
      case "--append":
        o.append = true;
        break;
      case "--no-modern":
        o.modern = false;
        break;
      case "--live":
        o.live = true;
        break;
      default:
        fail(`unknown argument "${arg}"`);
    }
  }
  return o;
}

/** The image: its blobs on disk, cached between runs. */
interface PullFixture {
  dir: string;
  layers: { digest: string; size: number }[];
  config: string;
  manifest: string;
  /** Uncompressed tar bytes of one layer. */
  tarBytes: number;
}

// One layer: a tar of one file of random bytes, gzipped (level 6).
function ensurePullFixture(layers: number, layerMiB: number): PullFixture {
  const dir = join(ROOT, `pull-${layers}x${layerMiB}MiB`);
  const meta = join(dir, "meta.json");
  if (existsSync(meta)) {
    log(`fixture ${layers} × ${layerMiB} MiB: cached in ${dir}`);
    return JSON.parse(readFileSync(meta, "utf8"));
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const started = performance.now();
  const size = layerMiB * MiB;
  const diffIds: string[] = [];
  const fixture: PullFixture = {
    dir,
    layers: [],
    config: "",
    manifest: "",
    tarBytes: 0,
  };
  for (let i = 0; i < layers; i++) {
    const header = tarHeader(`layer${i}.bin`, size);
    const tar = Buffer.concat([
      header,
      randomBytes(size),
      Buffer.alloc(endOfArchive(header.length + size)),
    ]);
    fixture.tarBytes = tar.length;
    diffIds.push(digestOf(tar));
    const blob = gzipSync(tar, { level: 6 });
    const digest = digestOf(blob);
    writeFileSync(join(dir, digest.slice(7)), blob);
    fixture.layers.push({ digest, size: blob.length });
  }
  const json = (value: unknown) =>
    new TextEncoder().encode(JSON.stringify(value));
  const config = json({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: diffIds },
  });
  fixture.config = digestOf(config);
  writeFileSync(join(dir, fixture.config.slice(7)), config);
  const oci = "application/vnd.oci.image";
  const manifest = json({
    schemaVersion: 2,
    mediaType: `${oci}.manifest.v1+json`,
    config: {
      mediaType: `${oci}.config.v1+json`,
      size: config.length,
      digest: fixture.config,
    },
    layers: fixture.layers.map((l) => ({
      mediaType: `${oci}.layer.v1.tar+gzip`,
      ...l,
    })),
  });
  fixture.manifest = digestOf(manifest);
  writeFileSync(join(dir, fixture.manifest.slice(7)), manifest);
  writeFileSync(meta, JSON.stringify(fixture, null, 2));
  log(
    `fixture ${layers} × ${layerMiB} MiB: generated in ${
      fmt((performance.now() - started) / 1000, 1)
    } s`,
  );
  return fixture;
}

async function pushPullFixture(url: string, f: PullFixture): Promise<string> {
  const blob = (digest: string) =>
    new Uint8Array(readFileSync(join(f.dir, digest.slice(7))));
  for (const { digest } of [{ digest: f.config }, ...f.layers]) {
    await pushBlob(url, REPOSITORY, blob(digest));
  }
  const tag = "pull";
  await pushManifest(
    url,
    REPOSITORY,
    tag,
    blob(f.manifest),
    "application/vnd.oci.image.manifest.v1+json",
  );
  return tag;
}

// The proxy as a process of its own; resolves with its host:port.
async function spawnProxy(
  upstream: string,
  rate: number,
  cleanup: Cleanup,
): Promise<string> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(REPO, "bench/_throttle_proxy.ts"),
      upstream,
      String(rate),
    ],
    { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  cleanup.add(() => stopChild(child, exited));
  let text = "";
  for await (const chunk of child.stdout!) {
    text += String(chunk);
    const match = /listening (\S+)/.exec(text);
    if (match) return match[1];
  }
  throw new Error("the throttling proxy did not start");
}

interface PullRow {
  label: string;
  kind: "ours" | "peer";
  mode: Mode;
  runtime?: Runtime;
  concurrency?: number;
  sink?: "file" | "stdout";
  peer?: string;
  argv: string[];
  cwd: string;
  outputPath: string;
  stdoutPath?: string;
  results: RunResult[];
}

function buildRows(
  o: PullOptions,
  reference: string,
  modern: boolean,
): PullRow[] {
  const rows: PullRow[] = [];
  for (const runtime of o.runtimes) {
    for (const mode of o.modes) {
      for (const sink of o.sinks) {
        for (const c of o.concurrency) {
          const flags = c === undefined ? [] : ["--concurrency", String(c)];
          const target = sink === "file" ? ["-o", OUT_TAR] : [];
          rows.push({
            label: `${runtime} · ${mode}${
              sink === "stdout" ? " · stdout" : ""
            }${c === undefined ? "" : ` · --concurrency ${c}`}`,
            kind: "ours",
            mode,
            runtime,
            concurrency: c,
            sink,
            argv: [
              ...runtimeArgv(runtime),
              ...target,
              "--layers",
              mode,
              ...flags,
              `${reference}=${TAG}`,
            ],
            cwd: cliDir(),
            outputPath: OUT_TAR,
            stdoutPath: sink === "stdout" ? OUT_TAR : undefined,
            results: [],
          });
        }
      }
    }
  }
  if (!modern) return rows;
  const out = modernPath("peer.tar");
  const tmp = modernPath("peer-tmp");
  registerOutput(out.host);
  registerOutput(tmp.host);
  mkdirSync(dirname(out.host), { recursive: true });
  if (o.modes.includes("compressed")) {
    rows.push({
      label: "crane 0.20 (sid) pull → tarball (compressed layers)",
      kind: "peer",
      mode: "compressed",
      peer: "crane 0.20",
      argv: inModern(["crane", "pull", "--insecure", reference, out.inside]),
      cwd: REPO,
      outputPath: out.host,
      results: [],
    });
  }
  if (o.modes.includes("uncompressed")) {
    rows.push({
      label: "skopeo 1.22 (sid) copy docker:// → docker-archive:",
      kind: "peer",
      mode: "uncompressed",
      peer: "skopeo 1.22",
      argv: inModern([
        "sh",
        "-c",
        `mkdir -p ${tmp.inside} && TMPDIR=${tmp.inside} exec skopeo --insecure-policy copy -q --src-tls-verify=false docker://${reference} docker-archive:${out.inside}:${TAG}`,
      ]),
      cwd: REPO,
      outputPath: out.host,
      results: [],
    });
  }
  return rows;
}

function render(rows: PullRow[]): string[] {
  const stats = (row: PullRow) => {
    const good = row.results.filter((r) => r.ok);
    return {
      ok: good.length === row.results.length && good.length > 0,
      wall: median(good.map((r) => r.wallPrecise)),
      rss: median(good.map((r) => r.rssKiB)) / 1024,
      cpu: median(good.map((r) => r.cpu)),
      bytes: good[0]?.outputBytes,
      error: row.results.find((r) => !r.ok)?.error,
    };
  };
  const lines = [
    "| row | median wall s | ours / peer | target ≤ 0.5× | peak RSS MiB | CPU s | output bytes | wall s per run | peak RSS MiB per run |",
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |",
  ];
  for (const row of rows) {
    const s = stats(row);
    const peer = rows.find((r) => r.kind === "peer" && r.mode === row.mode);
    const p = peer && stats(peer);
    const ratio = row.kind === "ours" && p?.ok ? s.wall / p.wall : NaN;
    const verdict = Number.isFinite(ratio)
      ? `${ratio <= TARGET_RATIO ? "met" : "missed"} (vs ${peer!.peer})`
      : "";
    let rss = fmt(s.rss, 1);
    if (row.kind === "ours" && s.rss >= RSS_TARGET_MIB) {
      rss = `**${rss}** ⚠ ≥ ${RSS_TARGET_MIB}`;
    }
    const label = s.error
      ? `${row.label} — FAILED: ${s.error.replaceAll("|", "\\|")}`
      : row.label;
    lines.push(
      `| ${label} | ${fmt(s.wall)} | ${
        Number.isFinite(ratio) ? `${fmt(ratio)}×` : ""
      } | ${verdict} | ${rss} | ${fmt(s.cpu)} | ${s.bytes ?? ""} | ${
        row.results.map((r) => r.ok ? fmt(r.wallPrecise) : "FAIL").join(" / ")
      } | ${row.results.map((r) => fmt(r.rssKiB / 1024, 0)).join(" / ")} |`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  claimScratch("bench/pull8.bench.ts");
  cleanOutputs();
  const absence = o.modern ? modernAbsence() : undefined;
  if (absence) log(`Skipping crane 0.20 and skopeo 1.22: ${absence}`);
  const modern = o.modern && !absence;
  const header = machineLine(
    modern ? `${modernVersions()} (Debian sid chroot)` : "none",
  );
  log(header);
  const options: Options = {
    sizes: [],
    runs: o.runs,
    runtimes: o.runtimes,
    modes: o.modes,
    append: false,
    skopeo: false,
    modern,
    registry: true,
    baselines: false,
    live: o.live,
  };
  const sourcesId = await prepareSources(options);
  for (const runtime of o.runtimes) {
    timed([...runtimeArgv(runtime), "--help"], { cwd: cliDir() });
  }

  const fixture = ensurePullFixture(o.layers, o.layerMiB);
  const cleanup = new Cleanup();
  let table: string[] = [];
  let load = "";
  try {
    const registry = await startBenchRegistry(cleanup);
    const tag = await pushPullFixture(registry.url, fixture);
    const proxy = await spawnProxy(registry.url, o.rate, cleanup);
    const reference = `${proxy}/${REPOSITORY}:${tag}`;
    log(
      `registry ${registry.host}, throttling proxy ${proxy} at ${o.rate} B/s per connection`,
    );
    const rows = buildRows(o, reference, modern);
    const before = loadavg();
    for (let run = 1; run <= o.runs; run++) {
      for (const row of rows) {
        cleanOutputs();
        const r = timed(row.argv, {
          cwd: row.cwd,
          stdoutPath: row.stdoutPath,
          outputPath: row.outputPath,
        });
        row.results.push(r);
        cleanOutputs();
        log(
          `run ${run}/${o.runs} ${row.label}: ${
            r.ok ? "ok" : `FAILED ${r.error}`
          } wall ${fmt(r.wallPrecise)} s, peak RSS ${
            fmt(r.rssKiB / 1024, 1)
          } MiB, output ${r.outputBytes ?? "-"} B`,
        );
      }
    }
    load = `before timing ${before}, after ${loadavg()}`;
    table = render(rows);
  } finally {
    await cleanup.close();
    if (modern) cleanModern();
  }
  const blobBytes = fixture.layers.reduce((n, l) => n + l.size, 0);
  publish("bench/pull8.bench.ts", [
    header,
    "",
    `CLI sources: ${sourcesId}.`,
    "",
    `Image: ${o.layers} gzip layers, each a tar of one file of ${o.layerMiB} MiB random bytes (${fixture.tarBytes} B uncompressed, ${
      fmt(blobBytes / o.layers / MiB, 1)
    } MiB gzip), in a loopback Debian docker-registry behind a proxy capping each connection at ${
      fmt(o.rate / 1e6, 0)
    } MB/s. Fetched one layer after another, the bodies alone take ${
      fmt(blobBytes / o.rate, 1)
    } s. Medians of ${o.runs} runs, interleaved. Ours: \`-o FILE --layers MODE\` (or stdout), verified (the default); crane 0.20 \`pull --insecure\` writes the layers as stored, skopeo 1.22 \`copy docker:// docker-archive:\` uncompressed.`,
    "",
    ...table,
    "",
    `Load average (1/5/15 min) ${load}.`,
    "",
    `Whole invocation: ${fmt(elapsedSeconds(), 0)} s.`,
    "",
  ], o);
}

await main();
