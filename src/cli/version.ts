/**
 * The version `docker-save --version` prints: package.json's (and
 * deno.json's), kept equal by a test (tests/integration/cli_errors.test.ts), since the
 * core reads no file at run time and an edge bundle has no package.json.
 *
 * @module
 */

/**
 * This release's version.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(`docker-save ${VERSION}`);
 * ```
 */
export const VERSION = "0.1.0";
