/**
 * workerd, Cloudflare's open-source Workers runtime (npm `workerd`, a
 * devDependency whose binary ships in a per-platform package), for the
 * tests and the bench: the worker example bundled as users bundle it, and a
 * `workerd serve` on 127.0.0.1 run from `examples/workerd.capnp` (the config
 * the docs show) with the test's port, registries and compatibility flags.
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { build } from "esbuild";
import { type Cleanup, tempDir } from "./cleanup.ts";
import { freePort, waitAnswers } from "./http.ts";
import { stopChild } from "./processes.ts";
import { skipUnless } from "./tools.ts";

const REPO = new URL("../../", import.meta.url).pathname;
/** The config users copy, which the tests run (with their own values). */
export const WORKERD_CONFIG = join(REPO, "examples", "workerd.capnp");
/** The worker example. */
export const WORKER_ENTRY = join(REPO, "examples", "worker.ts");

/**
 * The workerd binary, found the way the package's own `workerd` command
 * finds it (its main module resolves the platform package), so it is found
 * even where npm skipped the package's postinstall.
 */
function findWorkerd(): string | undefined {
  try {
    const path = (createRequire(import.meta.url)("workerd") as {
      default: string;
    }).default;
    return existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/** The workerd binary's path; `undefined` when not installed. */
export const WORKERD: string | undefined = findWorkerd();

/** `workerd --version`, e.g. `workerd 2026-11-23`. */
export const workerdVersion = (): string =>
  WORKERD
    ? spawnSync(WORKERD, ["--version"], { encoding: "utf8" }).stdout.trim()
    : "";

/**
 * The `skip` option of the workerd tests: a reason locally when workerd is
 * not installed; `false` on CI, where `requireWorkerd()` then fails.
 */
export const workerdSkip: string | false = skipUnless(
  WORKERD !== undefined,
  "workerd not installed (npm ci installs it)",
);

/** Fails when workerd is missing (reached only on CI). */
export function requireWorkerd(): string {
  if (!WORKERD) {
    throw new Error(
      "CI is set but workerd is missing: `npm ci` installs the devDependency " +
        "workerd (its binary is in @cloudflare/workerd-<platform>)",
    );
  }
  return WORKERD;
}

/**
 * Bundles examples/worker.ts (or another worker `entry`) as a user would for
 * Workers (esbuild, ESM, `platform: "browser"`: the `node:` modules stay
 * runtime imports) into `dir/worker.js`.
 */
export async function bundleWorker(
  dir: string,
  entry = WORKER_ENTRY,
): Promise<string> {
  const outfile = join(dir, "worker.js");
  await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    outfile,
    logLevel: "error",
  });
  return outfile;
}

/** What a test changes in examples/workerd.capnp. */
export interface WorkerdOptions {
  /** `nodejs_compat` on (the config's default) or off (web APIs only). */
  nodejsCompat: boolean;
  /** The `REGISTRIES` binding: hosts `?image=` may pull from. */
  registries: readonly string[];
  /** The socket's address; default a free port on 127.0.0.1. */
  address?: string;
}

/**
 * examples/workerd.capnp with the test's address, registries and flags;
 * throws when the example no longer has the lines it replaces.
 */
export function workerdConfig(template: string, options: WorkerdOptions) {
  const swaps: [RegExp, string][] = [
    [/address = "127\.0\.0\.1:8080"/, `address = "${options.address}"`],
    [
      /\(name = "REGISTRIES", text = "[^"]*"\)/,
      `(name = "REGISTRIES", text = "${options.registries.join(",")}")`,
    ],
    [
      /compatibilityFlags = \["nodejs_compat"\]/,
      `compatibilityFlags = [${options.nodejsCompat ? '"nodejs_compat"' : ""}]`,
    ],
  ];
  let config = template;
  for (const [pattern, replacement] of swaps) {
    if (!pattern.test(config)) {
      throw new Error(`examples/workerd.capnp has no ${pattern}`);
    }
    config = config.replace(pattern, replacement);
  }
  return config;
}

/** A running `workerd serve`. */
export interface Workerd {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  pid: number;
  /** What it printed so far. */
  log(): string;
}

/**
 * Serves `bundle` (a bundled worker.js) with workerd on a free loopback
 * port; `cleanup` stops it by its PID.
 */
export async function startWorkerd(
  cleanup: Cleanup,
  bundle: string,
  options: WorkerdOptions,
): Promise<Workerd> {
  const binary = requireWorkerd();
  const dir = await tempDir(cleanup, "workerd");
  await writeFile(join(dir, "worker.js"), await readFile(bundle));
  const template = await readFile(WORKERD_CONFIG, "utf8");
  for (let attempt = 0;; attempt++) {
    const port = await freePort();
    const address = options.address ?? `127.0.0.1:${port}`;
    await writeFile(
      join(dir, "config.capnp"),
      workerdConfig(template, { ...options, address }),
    );
    const child = spawn(binary, ["serve", join(dir, "config.capnp")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.on("data", (chunk) => output += String(chunk));
    child.stderr!.on("data", (chunk) => output += String(chunk));
    child.once("error", () => {});
    const exited = new Promise<void>((resolve) => child.once("exit", resolve));
    const stop = async () => {
      await stopChild(child, exited);
      child.stdout!.destroy();
      child.stderr!.destroy();
    };
    const url = `http://${address}`;
    if (await waitAnswers(`${url}/stats`, exited, [200], 400)) {
      cleanup.add(stop);
      return { url, port, pid: child.pid!, log: () => output };
    }
    await stop();
    if (attempt >= 3) throw new Error(`workerd did not start: ${output}`);
  }
}
