/**
 * Running Debian's skopeo from tests. Without skopeo on PATH its tests are
 * skipped, unless `CI` is set: then they fail, so a CI machine cannot
 * silently lose the check.
 *
 * @module
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { TOOL_TIMEOUT } from "./time.ts";
import { runs, skipUnless } from "./tools.ts";

/** The skopeo command. */
export const SKOPEO = "skopeo";

const installed = runs(SKOPEO, ["--version"]);
/** The `skip` option for skopeo tests. */
export const skopeoSkip = skipUnless(installed, "skopeo not installed");

/** Fails the test when skopeo is missing (on CI). */
export function requireSkopeo(): void {
  if (!installed) {
    assert.fail(
      "skopeo is not installed (or `skopeo --version` fails) and CI is set: " +
        "install it (apt-get install -y skopeo) so the tarballs are checked " +
        "by a real consumer",
    );
  }
}

/** Runs skopeo; rejects with its stderr when it exits non-zero. */
export function skopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      SKOPEO,
      args,
      { maxBuffer: 16 * 1024 * 1024, timeout: TOOL_TIMEOUT },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(
              `skopeo ${args.join(" ")} failed: ${error.message}\n${stderr}`,
            ),
          );
        } else resolve(String(stdout));
      },
    );
  });
}
