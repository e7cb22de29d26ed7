/**
 * The `docker-save` command: the only reader of argv and stdout. It turns
 * SOURCE arguments (OCI layouts, archives, image references) into images, saves
 * them, and writes a file or stdout, with progress on stderr.
 *
 * ```
 * deno run -A src/cli.ts -o alpine.tar alpine:3.20
 * deno run -A src/cli.ts -o out.tar oci:./oci:app=registry.example.com/app:v1
 * ```
 *
 * Its parts live in `src/cli/`: `help.ts` (the `--help` text), `args.ts`
 * (options), `source_grammar.ts` (SOURCE arguments), `open_source.ts`
 * (sources to images), `run.ts` (the command), `errors.ts` (what it prints
 * when it fails), `progress.ts` (progress on stderr).
 *
 * @module
 */

import process from "node:process";
import { main } from "./cli/run.ts";

export { USAGE } from "./cli/help.ts";
export { type CliArgs, parseArgs } from "./cli/args.ts";
export type { CredsValue } from "./cli/credentials.ts";
export {
  type ArchiveSource,
  type CliSource,
  type OciSource,
  parseSource,
  type RegistrySource,
} from "./cli/source_grammar.ts";
export { main };
export type { LayerMode, SaveFormat } from "./save/save.ts";
export type {
  RegistryCredentials,
  UncompressedSizes,
} from "./sources/registry/pull.ts";

if (import.meta.main ?? isNodeEntry()) {
  process.exitCode = await main(process.argv.slice(2));
}

function isNodeEntry(): boolean {
  const entry = process.argv[1];
  return entry !== undefined &&
    new URL(import.meta.url).pathname.endsWith(entry.replace(/^.*\//, "/"));
}
