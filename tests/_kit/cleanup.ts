/**
 * What a test sets up and must take down: a `Cleanup` stack that tests
 * empty in `finally` (servers, daemons by PID, temp dirs, `PATH`), and temp
 * dirs and copies removed after a callback.
 *
 * @module
 */

import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";

/** Things to stop, in reverse order of starting. */
export class Cleanup {
  #steps: (() => Promise<void> | void)[] = [];

  /** Adds a step, run by `close()` before the ones added earlier. */
  add(step: () => Promise<void> | void): void {
    this.#steps.push(step);
  }

  /** Runs every step, even when one throws; throws the first error. */
  async close(): Promise<void> {
    let first: unknown;
    while (this.#steps.length) {
      try {
        await this.#steps.pop()!();
      } catch (error) {
        first ??= error;
      }
    }
    if (first !== undefined) throw first;
  }
}

/**
 * A test (60 s at most) given a `Cleanup` that is emptied at its end, pass
 * or fail.
 */
export function withCleanup(
  name: string,
  fn: (cleanup: Cleanup) => Promise<void>,
): void {
  test(name, { timeout: 60_000 }, async () => {
    const cleanup = new Cleanup();
    try {
      await fn(cleanup);
    } finally {
      await cleanup.close();
    }
  });
}

/** A temp dir removed by `cleanup`. */
export async function tempDir(cleanup: Cleanup, prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), `docker-save-${prefix}-`));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Puts `dir` first on `PATH` until `cleanup`. */
export function prependPath(cleanup: Cleanup, dir: string): void {
  const before = process.env.PATH;
  process.env.PATH = `${dir}:${before ?? "/usr/bin:/bin"}`;
  cleanup.add(() => {
    process.env.PATH = before;
  });
}

/** A temp dir for the callback, removed afterwards. */
export async function withTemp<T>(
  prefix: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A writable copy of a directory tree in a new temp dir; `dispose` removes it. */
export function tempCopy(dir: string): { path: string; dispose(): void } {
  const root = mkdtempSync(join(tmpdir(), "docker-save-test-"));
  const copy = (from: string, to: string) => {
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        copy(join(from, entry.name), join(to, entry.name));
      } else {writeFileSync(
          join(to, entry.name),
          readFileSync(join(from, entry.name)),
        );}
    }
  };
  const path = join(root, "oci");
  copy(dir, path);
  return {
    path,
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}
