/**
 * Whether an external tool is there, and what its tests do when it is not:
 * skipped locally with a reason; with `CI` set they run and fail loudly, so
 * a CI machine cannot silently lose a check.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import process from "node:process";

/** `CI` is set (to anything but empty, `0` or `false`). */
export const CI: boolean = !["", "0", "false"].includes(process.env.CI ?? "");

/** Whether `command args` runs and exits 0. */
export function runs(command: string, args: readonly string[]): boolean {
  const result = spawnSync(command, args, { stdio: "ignore" });
  return result.error === undefined && result.status === 0;
}

/**
 * The `skip` option of a tool's tests: `false` when the tool is there or
 * under CI, else `reason`.
 */
export function skipUnless(installed: boolean, reason: string): string | false {
  return installed || CI ? false : reason;
}

/** Runs openssl; throws with its stderr when it fails. */
export function openssl(args: readonly string[]): void {
  const result = spawnSync("openssl", args, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${result.stderr}`);
  }
}

/** A fresh RSA key and a self-signed certificate for it (PEM files). */
export function selfSignedCert(
  paths: { key: string; cert: string },
  subject: string,
  days: number,
): void {
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    paths.key,
    "-out",
    paths.cert,
    "-days",
    String(days),
    "-subj",
    subject,
  ]);
}
