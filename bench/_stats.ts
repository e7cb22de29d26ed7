/**
 * A row's runs reduced to one line: medians of wall time, throughput, peak
 * RSS and CPU over the runs that succeeded.
 *
 * @module
 */

import type { Fixture } from "./_fixture.ts";
import type { Row } from "./_rows.ts";

/** The median of some numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A row's medians. */
export interface Summary {
  ok: boolean;
  wall: number;
  mbps: number;
  rssMiB: number;
  cpu: number;
  outputBytes?: number;
  error?: string;
}

/** Summarises a row's runs (`ok` only when every run succeeded). */
export function summarize(row: Row, fixture: Fixture): Summary {
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
