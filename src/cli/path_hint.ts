/**
 * A SOURCE written as a bare path (`docker-save app.tar`, `docker-save
 * ./oci`) is read as an image reference, and fails as one: "cannot resolve
 * the host name of registry-1.docker.io" says nothing of the file. When the
 * reference fails and a file or directory of that name exists, the error
 * says which prefix reads it.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { DockerSaveError } from "../model/errors.ts";
import { untrustedText } from "../util/untrusted_text.ts";

/**
 * `error` (from reading `source` as an image reference), with the prefix
 * that reads `source` as a local file or directory when one exists there;
 * else `error` itself.
 *
 * @example
 * ```ts
 * import { withPathHint } from "./path_hint.ts";
 * declare const error: unknown;
 * throw await withPathHint("app.tar", error);
 * // Cannot fetch manifest of "app.tar": …; "app.tar" is a file here:
 * // docker-archive:app.tar (or oci-archive:app.tar) reads it
 * ```
 */
export async function withPathHint(
  source: string,
  error: unknown,
): Promise<unknown> {
  if (!(error instanceof DockerSaveError)) return error;
  const found = await stat(source).catch(() => undefined);
  if (!found) return error;
  const shown = untrustedText(source);
  const hint = found.isDirectory()
    ? `"${shown}" is a directory here: oci:${shown}=TAG reads an OCI layout`
    : `"${shown}" is a file here: docker-archive:${shown} (or oci-archive:${shown}) reads it`;
  return new DockerSaveError(error.code, `${error.message}; ${hint}`, {
    cause: error,
  });
}
