/**
 * The command's own errors and the one line it prints for any error.
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import type { UncompressedSizes } from "../sources/registry/pull.ts";
import { untrustedText } from "../util/untrusted_text.ts";

/**
 * A command-line mistake: its message ends with a pointer to `--help`.
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 * throw new UsageError("no SOURCE given");
 * ```
 */
export class UsageError extends Error {
  /** @param message what is wrong with the command line */
  constructor(message: string) {
    super(`${message} (see --help)`);
    this.name = "UsageError";
  }
}

/**
 * The one line printed on stderr for an error, with a hint when an option
 * would avoid it. What came from outside (a registry's message, a tag, a
 * path) is shown with its control characters escaped.
 *
 * @param uncompressedSizes the `--uncompressed-sizes` in effect, if parsed
 * @example
 * ```ts
 * import { errorLine, UsageError } from "./errors.ts";
 * errorLine(new UsageError("no SOURCE given"));
 * // "docker-save: no SOURCE given (see --help)\n"
 * ```
 */
export function errorLine(
  error: unknown,
  uncompressedSizes?: UncompressedSizes,
): string {
  return `docker-save: ${untrustedText(messageOf(error), Infinity)}${
    hintOf(error, uncompressedSizes)
  }\n`;
}

// A wrong gzip-trailer size shows as an uncompressed size mismatch; say how
// to avoid it.
function hintOf(
  error: unknown,
  uncompressedSizes: UncompressedSizes | undefined,
): string {
  return error instanceof DockerSaveError &&
      error.code === "UNCOMPRESSED_SIZE_MISMATCH" &&
      uncompressedSizes === "trailer"
    ? " (if the layer is a multi-member gzip or over 4 GiB larger than its blob, retry with --uncompressed-sizes count)"
    : "";
}

function messageOf(error: unknown): string {
  if (error instanceof DockerSaveError || error instanceof UsageError) {
    return error.message.replaceAll("\n", " ");
  }
  return String((error as Error)?.message ?? error).replaceAll("\n", " ");
}
