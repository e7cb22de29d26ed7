/**
 * The output file's path, checked before anything is read or fetched, and
 * the file system's errors named by that path (never the temporary file's).
 * As the docker CLI's `save -o` (`ValidateOutputPath`): a device or an
 * irregular file (a FIFO, a socket) is refused rather than replaced, and so
 * is a path under a missing directory; a directory too, since we write one
 * file.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import { importNode } from "../runtime/_import.ts";
import { untrustedText } from "../util/untrusted_text.ts";

type Fs = typeof import("node:fs/promises");
type Stats = import("node:fs").Stats;

/**
 * Throws `DockerSaveError` `BAD_OUTPUT` unless a file can be written at
 * `path`: it is a regular file or nothing, in an existing directory we may
 * write in. Needs
 * `node:fs` (it checks nothing without).
 *
 * @example
 * ```ts
 * import { checkOutputPath } from "./output_path.ts";
 * await checkOutputPath("out.tar");
 * ```
 */
export async function checkOutputPath(path: string): Promise<void> {
  const fs = await importNode<Fs>("node:fs/promises");
  if (!fs) return;
  const refuse = (reason: string) =>
    new DockerSaveError(
      "BAD_OUTPUT",
      `Cannot write "${untrustedText(path, Infinity)}": ${reason}`,
    );
  let stats: Stats | undefined;
  try {
    stats = await fs.stat(path);
  } catch (error) {
    if (codeOf(error) !== "ENOENT") throw refuse(reasonOf(error));
  }
  if (stats?.isDirectory()) throw refuse("it is a directory");
  if (stats?.isCharacterDevice() || stats?.isBlockDevice()) {
    throw refuse("it is a device, not a regular file");
  }
  if (stats?.isFIFO()) throw refuse("it is a FIFO, not a regular file");
  if (stats && !stats.isFile()) throw refuse("it is not a regular file");
  const dir = (await importNode<typeof import("node:path")>("node:path"))
    ?.dirname(path) ?? ".";
  let parent: Stats;
  try {
    parent = await fs.stat(dir);
  } catch (error) {
    throw refuse(
      codeOf(error) === "ENOENT"
        ? `its directory "${untrustedText(dir, Infinity)}" does not exist`
        : reasonOf(error),
    );
  }
  if (!parent.isDirectory()) {
    throw refuse(`"${untrustedText(dir, Infinity)}" is not a directory`);
  }
  // The temporary file is created there, and renamed there.
  try {
    await fs.access(dir, fs.constants.W_OK);
  } catch (error) {
    throw refuse(
      `its directory "${untrustedText(dir, Infinity)}" is not writable (${
        codeOf(error) ?? "access"
      })`,
    );
  }
}

/**
 * The `BAD_OUTPUT` error for a file system error met while writing `path`
 * (its temporary file, the rename), named by `path`; any other error as it
 * is.
 *
 * @example
 * ```ts
 * import { outputError } from "./output_path.ts";
 * const error = Object.assign(new Error("ENOSPC: no space left on device, write"), {
 *   code: "ENOSPC",
 * });
 * outputError("out.tar", error); // Cannot write "out.tar": no space left on device (ENOSPC)
 * ```
 */
export function outputError(path: string, error: unknown): unknown {
  if (error instanceof DockerSaveError || !codeOf(error)) return error;
  return new DockerSaveError(
    "BAD_OUTPUT",
    `Cannot write "${untrustedText(path, Infinity)}": ${reasonOf(error)}`,
    { cause: error },
  );
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^E[A-Z]+$/.test(code) ? code : undefined;
}

// "permission denied (EACCES)" from Node's "EACCES: permission denied,
// open '….tmp'": the path it names may be the temporary file's.
function reasonOf(error: unknown): string {
  const code = codeOf(error);
  const message = String((error as Error)?.message ?? error);
  const text = message.replace(/^E[A-Z]+: /, "").replace(/,.*$/s, "").trim();
  return code ? `${text || code} (${code})` : text;
}
