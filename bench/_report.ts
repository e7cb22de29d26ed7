/**
 * The bench's Markdown: the machine, one table of every row per fixture
 * size, and a table of ours against the peers on issue 12's jobs with the
 * target ratio of each.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { REPO } from "./_cli.ts";
import type { Fixture } from "./_fixture.ts";
import { log, MiB } from "./_harness.ts";
import type { Runtime } from "./_options.ts";
import { JOB_TITLES, type Row, TARGETS } from "./_rows.ts";
import { summarize, type Summary } from "./_stats.ts";

/** Our peak-RSS target. */
export const RSS_TARGET_MIB = 100;

/** A number with `digits` decimals, `–` when not finite. */
export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "–";
}

/** The first line of a command's stdout, or `absent`. */
export function versionOf(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { cwd: REPO });
  if (r.status !== 0) return "absent";
  return r.stdout.toString().trim().split("\n")[0];
}

/** CPU, cores, memory, kernel and every tool's version, on one line. */
export function machineLine(peers: string): string {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const nproc = spawnSync("nproc").stdout?.toString().trim() ??
    String(os.cpus().length);
  const ram = (os.totalmem() / 1024 ** 3).toFixed(1);
  const deno = versionOf([join(REPO, "node_modules/.bin/deno"), "--version"]);
  const bun = versionOf([join(REPO, "node_modules/.bin/bun"), "--version"]);
  return `Machine: nproc ${nproc}, CPU "${model}", RAM ${ram} GiB, kernel ${os.release()}; ` +
    `node ${process.version}, ${deno}, bun ${bun}; peers: ${peers}. Date: ${
      new Date().toISOString()
    }.`;
}

/** The 1/5/15-minute load averages. */
export function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(
    " / ",
  );
}

/** Everything one fixture size gives. */
export interface SizeReport {
  fixture: Fixture;
  rows: Row[];
  runs: number;
  /** Peak RSS of each runtime's `--help`. */
  floors: Map<Runtime, number>;
  load: string;
  /** Why some peers did not run, if so. */
  skipped: string[];
}

/** The Markdown section of one fixture size. */
export function renderSize(report: SizeReport): string {
  const { fixture, rows, runs } = report;
  const summaries = new Map(rows.map((row) => [row, summarize(row, fixture)]));
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
    ...peerTable(rows, summaries),
    "| row | median wall s | MB/s (of what) | peak RSS MiB | ratio | CPU s (user+sys) | output bytes | wall s per run | peak RSS MiB per run |",
    "| --- | ---: | --- | ---: | --- | ---: | ---: | --- | --- |",
  );
  for (const row of rows) {
    const s = summaries.get(row)!;
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
      `| ${label} | ${fmt(s.wall)} | ${fmt(s.mbps, 0)} (${what}) | ${rss} | ${
        ratioText(row, rows, summaries)
      } | ${fmt(s.cpu)} | ${s.outputBytes ?? ""} | ${perRun} | ${rssPerRun} |`,
    );
  }
  if (report.floors.size) {
    lines.push(
      "",
      `Startup floor (peak RSS of \`--help\`, untimed warm-up): ${
        [...report.floors].map(([r, kib]) => `${r} ${fmt(kib / 1024, 1)} MiB`)
          .join(", ")
      }.`,
    );
  }
  for (const reason of report.skipped) lines.push("", `Skipped: ${reason}.`);
  lines.push("", `Load average (1/5/15 min) ${report.load}.`);
  const over = rows.filter((r) =>
    r.kind === "ours" && summaries.get(r)!.rssMiB >= RSS_TARGET_MIB
  );
  const failed = rows.filter((r) =>
    r.kind !== "baseline" && !summaries.get(r)!.ok
  );
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
        ? ` Failures: ${
          failed.map((r) => `${r.label}: ${summaries.get(r)!.error}`).join("; ")
        }.`
        : ""
    }`,
  );
  return lines.join("\n");
}

// An "ours" row against the peers on its job, and the copy or gunzip limit.
function ratioText(
  row: Row,
  rows: Row[],
  summaries: Map<Row, Summary>,
): string {
  if (row.kind !== "ours") return `(${row.kind})`;
  const s = summaries.get(row)!;
  if (!s.ok) return "";
  const parts: string[] = [];
  for (const peer of rows) {
    const p = summaries.get(peer)!;
    if (peer.kind === "peer" && peer.job === row.job && p.ok) {
      parts.push(`${fmt(s.wall / p.wall)}× ${peer.peer}'s wall`);
    }
  }
  const limit = (prefix: string) => {
    const baseline = rows.find((r) => r.label.startsWith(prefix));
    const b = baseline && summaries.get(baseline);
    return b?.ok ? b : undefined;
  };
  if (row.job === "oci-compressed") {
    const cat = limit("copy limit");
    if (cat) parts.push(`${fmt(s.mbps / cat.mbps)}× copy-limit MB/s`);
  } else if (row.job === "oci-uncompressed") {
    const zcat = limit("gunzip limit");
    if (zcat) parts.push(`${fmt(s.mbps / zcat.mbps)}× zcat MB/s`);
  }
  return parts.join("; ");
}

// Issue 12's table: each job with a target, each runtime, against the peer.
function peerTable(rows: Row[], summaries: Map<Row, Summary>): string[] {
  const lines: string[] = [];
  for (const target of TARGETS) {
    const peer = rows.find((r) =>
      r.kind === "peer" && r.job === target.job && r.peer === target.peer
    );
    if (!peer) continue;
    const p = summaries.get(peer)!;
    for (const row of rows) {
      if (row.kind !== "ours" || row.job !== target.job) continue;
      const s = summaries.get(row)!;
      const ratio = s.wall / p.wall;
      lines.push(
        `| ${JOB_TITLES[target.job]} | ${row.runtime}: ${
          fmt(s.wall)
        } s | ${target.peer}: ${fmt(p.wall)} s | ${fmt(ratio)}× | ≤ ${
          fmt(target.ratio, 1)
        }× ${
          Number.isFinite(ratio)
            ? (ratio <= target.ratio ? "met" : "missed")
            : ""
        } | ${fmt(s.rssMiB, 0)} / ${fmt(p.rssMiB, 0)} |`,
      );
    }
  }
  if (lines.length === 0) return [];
  return [
    "Against today's peers (issue 12's jobs):",
    "",
    "| job | ours (median wall) | peer (median wall) | ours / peer | target | peak RSS MiB ours / peer |",
    "| --- | --- | --- | ---: | --- | --- |",
    ...lines,
    "",
    "Every row:",
    "",
  ];
}

/**
 * A run's Markdown: headed by the command that made it (`script` and this
 * process's arguments), printed, and written to `out` (after what it holds
 * with `append`, else as a new results file).
 */
export function publish(
  script: string,
  body: string[],
  options: { out?: string; append: boolean },
): void {
  const command = `node --import tsx ${script} ${
    process.argv.slice(2).join(" ")
  }`.trim();
  const document = [`## \`${command}\``, "", ...body].join("\n");
  console.log(document);
  if (!options.out) return;
  const path = resolve(options.out);
  mkdirSync(dirname(path), { recursive: true });
  const previous = options.append && existsSync(path)
    ? `${readFileSync(path, "utf8")}\n`
    : "# docker-save benchmark results\n\n";
  writeFileSync(path, previous + document);
  log(`wrote ${path}`);
}
