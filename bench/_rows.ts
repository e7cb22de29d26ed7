/**
 * What the bench times for one fixture: our CLI per runtime on each job, the
 * peers on the same jobs, and the copy/gunzip/hash limits.
 *
 * The jobs (issue 12's three, plus OCI layout → compressed layers):
 *
 * | job | ours | peers |
 * | --- | --- | --- |
 * | OCI layout → uncompressed docker tarball | `-o FILE oci:DIR:bench=TAG` | skopeo 1.9 (Debian 12), skopeo 1.22: `copy oci: docker-archive:` |
 * | OCI layout → compressed layers | `--layers compressed` | (none; `cat` is the limit) |
 * | loopback registry → compressed layers | `--layers compressed HOST/bench/x:N=TAG` | crane 0.20: `pull` |
 * | loopback registry → uncompressed docker tarball | `HOST/bench/x:N=TAG` | skopeo 1.22: `copy docker:// docker-archive:` |
 *
 * Every row writes a file, verified as it goes (our CLI verifies by
 * default; crane checks blob digests; skopeo checks digests on copy).
 *
 * @module
 */

import { mkdirSync } from "node:fs";
import process from "node:process";
import { cliDir, REPO, saveArgv, TAG } from "./_cli.ts";
import { type Fixture, FIXTURE_REF } from "./_fixture.ts";
import {
  OUT_BIN,
  OUT_TAR,
  registerOutput,
  type RunResult,
  SKOPEO_TAR,
  SKOPEO_TMP,
} from "./_harness.ts";
import type { Mode, Options, Runtime } from "./_options.ts";
import { HOST_SKOPEO, inModern, modernPath } from "./_peers.ts";

/** A job: one source, one output shape. */
export type JobId =
  | "oci-uncompressed"
  | "oci-compressed"
  | "registry-compressed"
  | "registry-uncompressed";

/** What each job is, in words. */
export const JOB_TITLES: Record<JobId, string> = {
  "oci-uncompressed": "OCI layout → uncompressed docker tarball file",
  "oci-compressed": "OCI layout → tarball with compressed layers",
  "registry-compressed": "loopback registry → tarball with compressed layers",
  "registry-uncompressed": "loopback registry → uncompressed docker tarball",
};

/** Issue 12's targets: our wall time at most `ratio` × the peer's. */
export const TARGETS: { job: JobId; peer: string; ratio: number }[] = [
  { job: "oci-uncompressed", peer: "skopeo 1.22", ratio: 0.8 },
  { job: "registry-compressed", peer: "crane 0.20", ratio: 1.0 },
  { job: "registry-uncompressed", peer: "skopeo 1.22", ratio: 0.8 },
];

/** One row of the table: a command and its timed runs. */
export interface Row {
  label: string;
  kind: "ours" | "peer" | "baseline";
  /** The job, for ours and the peers. */
  job?: JobId;
  runtime?: Runtime;
  /** A peer's short name (`skopeo 1.22`), for ratios. */
  peer?: string;
  /** What the MB/s counts. */
  throughputOf: "output" | "blob" | "layer tar";
  argv: string[];
  cwd: string;
  stdoutPath?: string;
  outputPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Runs before each timed run, untimed. */
  prepare?: () => void;
  results: RunResult[];
}

/** What the rows of one fixture need to know. */
export interface RowInput {
  fixture: Fixture;
  options: Options;
  /** `skopeo --version` of Debian 12's skopeo, when it runs here. */
  hostSkopeo?: string;
  /** The fixture's reference in the loopback registry, when there is one. */
  registryReference?: string;
  /** The fixture's path inside the chroot, when its peers can run. */
  modernFixture?: string;
}

const MODE_JOBS: Record<Mode, { oci: JobId; registry: JobId }> = {
  uncompressed: { oci: "oci-uncompressed", registry: "registry-uncompressed" },
  compressed: { oci: "oci-compressed", registry: "registry-compressed" },
};

/** Every row for one fixture, ours first. */
export function buildRows(input: RowInput): Row[] {
  const { fixture, options } = input;
  const rows: Row[] = [];
  const sources: ["oci" | "registry", string][] = [
    ["oci", `oci:${fixture.dir}:${FIXTURE_REF}=${TAG}`],
  ];
  if (input.registryReference) {
    sources.push(["registry", `${input.registryReference}=${TAG}`]);
  }
  for (const [from, source] of sources) {
    for (const runtime of options.runtimes) {
      for (const mode of options.modes) {
        rows.push({
          label: `${runtime} · ${
            from === "oci" ? "OCI layout" : "registry"
          } → ${mode}`,
          kind: "ours",
          job: MODE_JOBS[mode][from],
          runtime,
          throughputOf: mode === "compressed" ? "blob" : "output",
          argv: saveArgv(runtime, mode, source),
          cwd: cliDir(),
          outputPath: OUT_TAR,
          results: [],
        });
      }
    }
  }
  rows.push(...peerRows(input));
  if (options.baselines) rows.push(...baselineRows(fixture));
  return rows;
}

function peerRows(input: RowInput): Row[] {
  const rows: Row[] = [];
  const wants = (mode: Mode) => input.options.modes.includes(mode);
  const peer = (
    fields: Omit<Row, "kind" | "throughputOf" | "cwd" | "results">,
  ): Row => ({
    ...fields,
    kind: "peer",
    throughputOf: "output",
    cwd: REPO,
    results: [],
  });
  if (input.hostSkopeo && wants("uncompressed")) {
    const version = /\d+\.\d+/.exec(input.hostSkopeo)?.[0] ?? "";
    rows.push(peer({
      label: `skopeo ${version} (Debian 12) copy oci: → docker-archive:`,
      job: "oci-uncompressed",
      peer: `skopeo ${version}`,
      argv: [
        HOST_SKOPEO,
        "--insecure-policy",
        "copy",
        "-q",
        `oci:${input.fixture.dir}:${FIXTURE_REF}`,
        `docker-archive:${SKOPEO_TAR}:${TAG}`,
      ],
      outputPath: SKOPEO_TAR,
      env: { ...process.env, TMPDIR: SKOPEO_TMP },
      prepare: () => mkdirSync(SKOPEO_TMP, { recursive: true }),
    }));
  }
  if (!input.modernFixture) return rows;
  const out = modernPath("peer.tar");
  const tmp = modernPath("peer-tmp");
  registerOutput(out.host);
  registerOutput(tmp.host);
  const skopeo = (from: string, job: JobId, label: string) =>
    peer({
      label,
      job,
      peer: "skopeo 1.22",
      argv: inModern([
        "env",
        `TMPDIR=${tmp.inside}`,
        "skopeo",
        "--insecure-policy",
        "copy",
        "-q",
        "--src-tls-verify=false",
        from,
        `docker-archive:${out.inside}:${TAG}`,
      ]),
      outputPath: out.host,
      prepare: () => mkdirSync(tmp.host, { recursive: true }),
    });
  if (wants("uncompressed")) {
    rows.push(skopeo(
      `oci:${input.modernFixture}:${FIXTURE_REF}`,
      "oci-uncompressed",
      "skopeo 1.22 (sid) copy oci: → docker-archive:",
    ));
  }
  if (input.registryReference && wants("compressed")) {
    rows.push(peer({
      label: "crane 0.20 (sid) pull registry → tarball (compressed layers)",
      job: "registry-compressed",
      peer: "crane 0.20",
      argv: inModern([
        "crane",
        "pull",
        "--insecure",
        input.registryReference,
        out.inside,
      ]),
      outputPath: out.host,
    }));
  }
  if (input.registryReference && wants("uncompressed")) {
    rows.push(skopeo(
      `docker://${input.registryReference}`,
      "registry-uncompressed",
      "skopeo 1.22 (sid) copy docker:// → docker-archive:",
    ));
  }
  return rows;
}

function baselineRows(fixture: Fixture): Row[] {
  const baseline = (
    fields: Pick<Row, "label" | "throughputOf" | "argv" | "stdoutPath">,
  ): Row => ({
    ...fields,
    kind: "baseline",
    cwd: REPO,
    outputPath: fields.stdoutPath,
    results: [],
  });
  return [
    baseline({
      label: "copy limit: `cat BLOB > out.bin`",
      throughputOf: "blob",
      argv: ["cat", fixture.blobPath],
      stdoutPath: OUT_BIN,
    }),
    baseline({
      label: "gunzip limit: `zcat BLOB > out.bin`",
      throughputOf: "layer tar",
      argv: ["zcat", fixture.blobPath],
      stdoutPath: OUT_BIN,
    }),
    baseline({
      label: "hash limit: `sha256sum BLOB`",
      throughputOf: "blob",
      argv: ["sha256sum", fixture.blobPath],
    }),
  ];
}
