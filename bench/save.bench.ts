/**
 * Throughput and peak-RSS benchmark of the `docker-save` CLI on Node, Deno
 * and Bun, against today's peers on the same jobs — skopeo 1.22 and crane
 * 0.20 from the Debian sid chroot of `scripts/modern-loaders.sh`, and Debian
 * 12's skopeo 1.9 — and against simple limits (`cat`, `zcat`, `sha256sum`).
 *
 * ```sh
 * node --import tsx bench/save.bench.ts [--sizes 256,1024] [--runs 3] \
 *   [--runtimes node,deno,bun[,node-tsx,deno-capped]] \
 *   [--modes uncompressed,compressed] \
 *   [--out bench/results.md [--append]] [--no-skopeo] [--no-modern] \
 *   [--no-registry] [--no-baselines] [--live]
 * ```
 *
 * - The jobs and rows: bench/_rows.ts. The image: bench/_fixture.ts (an OCI
 *   layout per size, cached), also served by a loopback Debian
 *   docker-registry (bench/_registry_fixture.ts) for the registry jobs.
 * - Our CLI runs from a checked snapshot of the sources (bench/_cli.ts).
 * - The peers (bench/_peers.ts): without the chroot (build it with
 *   `scripts/modern-loaders.sh start`, as root; no daemon is needed) the
 *   skopeo 1.22 and crane rows are skipped with a message.
 * - Every timed command runs under `/usr/bin/time` (bench/_harness.ts); its
 *   output goes to /tmp/docker-save-bench/ (the peers': the same dir in the
 *   chroot), deleted after each run. Runs are interleaved (each run goes
 *   through every row once) and medians taken per row (bench/_stats.ts). The
 *   blob is read once before timing (page cache warm), and each runtime runs
 *   `--help` once untimed (transpile caches warm; that run's peak RSS is
 *   reported as the runtime's floor).
 * - The Markdown (bench/_report.ts) goes to stdout and to `--out`.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import process from "node:process";
import { Cleanup } from "../tests/_kit/cleanup.ts";
import { cliDir, prepareSources, runtimeArgv } from "./_cli.ts";
import { ensureFixture } from "./_fixture.ts";
import {
  claimScratch,
  cleanOutputs,
  elapsedSeconds,
  log,
  timed,
} from "./_harness.ts";
import { parseOptions, type Runtime } from "./_options.ts";
import {
  cleanModern,
  hasHostSkopeo,
  HOST_SKOPEO,
  modernAbsence,
  modernVersions,
  shareWithModern,
} from "./_peers.ts";
import { pushFixture, startBenchRegistry } from "./_registry_fixture.ts";
import {
  fmt,
  loadavg,
  machineLine,
  publish,
  renderSize,
  versionOf,
} from "./_report.ts";
import { buildRows } from "./_rows.ts";

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  claimScratch("bench/save.bench.ts");
  cleanOutputs();
  const skipped: string[] = [];
  const hostSkopeo = options.skopeo && hasHostSkopeo()
    ? versionOf([HOST_SKOPEO, "--version"])
    : undefined;
  if (options.skopeo && !hostSkopeo) {
    skipped.push(`Debian 12's skopeo: not found at ${HOST_SKOPEO}`);
  }
  const absence = options.modern ? modernAbsence() : undefined;
  if (absence) skipped.push(`the skopeo 1.22 and crane 0.20 rows: ${absence}`);
  const modern = options.modern && !absence;
  for (const reason of skipped) console.log(`Skipping ${reason}.`);
  const peers = [
    hostSkopeo ? `${hostSkopeo} (Debian 12)` : "",
    modern ? `${modernVersions()} (Debian sid chroot)` : "",
  ].filter(Boolean).join(", ") || "none";
  const header = machineLine(peers);
  log(header);

  const sourcesId = await prepareSources(options);
  // Warm the runtimes' transpile caches; note each runtime's RSS floor.
  const floors = new Map<Runtime, number>();
  for (const runtime of options.runtimes) {
    const r = timed([...runtimeArgv(runtime), "--help"], { cwd: cliDir() });
    if (!r.ok) log(`${runtime} --help failed: ${r.error}`);
    floors.set(runtime, r.rssKiB);
  }

  const sections: string[] = [];
  const cleanup = new Cleanup();
  try {
    const registry = options.registry
      ? await startBenchRegistry(cleanup)
      : undefined;
    for (const size of options.sizes) {
      const sizeStart = elapsedSeconds();
      const fixture = await ensureFixture(size);
      const rows = buildRows({
        fixture,
        options,
        hostSkopeo,
        registryReference: registry && await pushFixture(registry, fixture),
        modernFixture: modern ? shareWithModern(fixture.dir) : undefined,
      });
      // Warm the page cache: read the blob once.
      spawnSync("cat", [fixture.blobPath], {
        stdio: ["ignore", "ignore", "inherit"],
      });
      log(`size ${size} MiB: page cache warmed (blob read once)`);

      const loadBefore = loadavg();
      // Interleave: each run goes through every row once, so drift is shared.
      for (let run = 1; run <= options.runs; run++) {
        for (const row of rows) {
          cleanOutputs();
          row.prepare?.();
          const r = timed(row.argv, {
            cwd: row.cwd,
            stdoutPath: row.stdoutPath,
            outputPath: row.outputPath,
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
      const section = renderSize({
        fixture,
        rows,
        runs: options.runs,
        floors,
        skipped,
        load:
          `before timing ${loadBefore}, after ${loadavg()} (other work on this 2-core machine inflates walls)`,
      });
      sections.push(
        `${section}\n\nThis size took ${
          fmt(elapsedSeconds() - sizeStart, 0)
        } s (including fixture generation and the registry push, if any).`,
      );
      console.log(`\n${sections.at(-1)}\n`);
    }
  } finally {
    await cleanup.close();
    if (modern) cleanModern();
  }

  const notes = [
    "Notes: MB/s = 10^6 bytes/s. Our rows run `-o /tmp/docker-save-bench/out.tar --layers MODE SOURCE` with verification on (the default), SOURCE being `oci:DIR:bench=bench/x:1` or `127.0.0.1:PORT/bench/x:SIZE=bench/x:1` (Debian's docker-registry on loopback); " +
    "uncompressed rows count output-tarball bytes/s, compressed rows and `cat`/`sha256sum` count blob bytes/s, `zcat` counts layer-tar bytes/s. " +
    "skopeo 1.22 and crane 0.20 run from the Debian sid chroot of scripts/modern-loaders.sh (`chroot DIR skopeo …`, writing into the chroot's /tmp on the same disk); skopeo writes an uncompressed docker-archive, `crane pull` a tarball with the layers as stored. " +
    "Wall is measured around `/usr/bin/time -f '%e %M %U %S'` (which gives the peak RSS: the largest single process of the tree, as wait4 reports it); outputs are deleted after each run. " +
    "An OCI layout does not record the uncompressed size; with -o FILE the tar header is reserved and patched after the layer is written, so each layer is gunzipped once (to stdout a first counting pass is needed); from a registry, the gzip trailer gives it (one download). " +
    "With a load average above 2 on this 2-core machine the walls are inflated; the CPU column is the steadier number.",
  ];
  publish("bench/save.bench.ts", [
    header,
    "",
    `CLI sources: ${sourcesId}.`,
    "",
    ...sections.flatMap((s) => [s, ""]),
    ...notes,
    "",
    `Whole invocation: ${fmt(elapsedSeconds(), 0)} s.`,
    "",
  ], options);
}

await main();
