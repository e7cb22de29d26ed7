/**
 * The `docker-save` command: the only reader of argv and stdout. It turns
 * SOURCE arguments into images, saves them, and writes a file or stdout.
 *
 * ```
 * deno run -A src/cli.ts -o out.tar oci:./oci:app=registry.example.com/app:v1
 * ```
 *
 * @module
 */

import process from "node:process";
import { stat } from "node:fs/promises";
import { DockerSaveError } from "./errors.ts";
import type { Image } from "./image.ts";
import { type LayerMode, save } from "./save.ts";
import { writeFileAtomic } from "./save_to_file.ts";
import { fromOciLayout } from "./sources/oci_layout.ts";
import { parseTag } from "./tag.ts";

/** The `--help` text. */
export const USAGE = `Usage: docker-save [options] SOURCE...

Write a docker save-compatible tarball (what \`docker load\` reads) of one or
more images, byte-identical to containerregistry's multi_image_tarball.

Sources:
  oci:DIR[:REF][=TAG]   the image of OCI layout DIR whose index entry has the
                        org.opencontainers.image.ref.name REF (REF may be
                        omitted when the index has one entry), saved as TAG.
                        TAG defaults to REF.

Options:
  -o, --output FILE     write FILE, atomically: a temporary file renamed at
                        the end, removed on error. "-" writes stdout. Without
                        -o, stdout is used when it is not a terminal.
      --layers MODE     uncompressed (default; the reference's format: each
                        layer.tar is the layer tar itself) or compressed (each
                        layer.tar is the blob as stored; one pass, no gunzip;
                        docker, podman and skopeo load it)
      --no-verify       skip the sha256 checks of blobs and diff_ids (a
                        corrupt blob then goes into the tarball unnoticed)
  -h, --help            show this help

Exit status: 0 when the whole tarball was written; otherwise 1, with a
one-line error on stderr.

Examples:
  docker-save -o app.tar oci:./oci:app=registry.example.com/app:v1
  docker-save oci:./layout=app:v1 oci:./other=tool:2 > both.tar
`;

/** Parsed command line. */
export interface CliArgs {
  /** `-o` value; `undefined` when not given. */
  output?: string;
  /** The SOURCE arguments. */
  sources: string[];
  /** `--no-verify`. */
  verify: boolean;
  /** `--layers`. */
  layers: LayerMode;
  /** `--help`. */
  help: boolean;
}

/**
 * Parses the command line (without the runtime and script names).
 *
 * @example
 * ```ts
 * import { parseArgs } from "./cli.ts";
 * parseArgs(["-o", "a.tar", "oci:./oci=app:v1"]);
 * // { output: "a.tar", sources: ["oci:./oci=app:v1"], verify: true, layers: "uncompressed", help: false }
 * ```
 */
export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    sources: [],
    verify: true,
    layers: "uncompressed",
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") args.help = true;
    else if (arg === "--no-verify") args.verify = false;
    else if (arg === "--layers" || arg.startsWith("--layers=")) {
      const mode = arg === "--layers" ? argv[++i] : arg.slice(9);
      if (mode !== "uncompressed" && mode !== "compressed") {
        throw new UsageError(
          `--layers takes uncompressed or compressed, not "${mode ?? ""}"`,
        );
      }
      args.layers = mode;
    } else if (arg === "-o" || arg === "--output") {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a FILE`);
      args.output = argv[++i];
    } else if (arg.startsWith("--output=")) args.output = arg.slice(9);
    else if (arg.startsWith("-") && arg !== "-") {
      throw new UsageError(`unknown option "${arg}"`);
    } else args.sources.push(arg);
  }
  return args;
}

/** A SOURCE argument, split. */
export interface OciSource {
  /** The layout directory. */
  dir: string;
  /** The index entry's ref name, if given. */
  ref?: string;
  /** The tag to save it as. */
  tag: string;
}

/**
 * Splits `oci:DIR[:REF][=TAG]`. DIR is the longest-matching existing
 * directory before a `:`, so both DIR and REF may contain colons.
 *
 * @example
 * ```ts
 * import { parseSource } from "./cli.ts";
 * await parseSource("oci:./oci:app=example.com/app:v1");
 * // { dir: "./oci", ref: "app", tag: "example.com/app:v1" }
 * ```
 */
export async function parseSource(source: string): Promise<OciSource> {
  if (!source.startsWith("oci:")) {
    throw new UsageError(
      `source "${source}" is not supported; use oci:DIR[:REF][=TAG]`,
    );
  }
  let rest = source.slice(4);
  let tag: string | undefined;
  const equals = rest.lastIndexOf("=");
  if (equals >= 0) {
    tag = rest.slice(equals + 1);
    rest = rest.slice(0, equals);
  }
  let dir: string | undefined;
  let ref: string | undefined;
  if (await isDirectory(rest)) dir = rest;
  else {
    for (
      let colon = rest.indexOf(":");
      colon >= 0;
      colon = rest.indexOf(":", colon + 1)
    ) {
      if (await isDirectory(rest.slice(0, colon))) {
        dir = rest.slice(0, colon);
        ref = rest.slice(colon + 1);
        break;
      }
    }
  }
  if (dir === undefined) {
    throw new UsageError(`source "${source}": no such directory`);
  }
  tag ??= ref;
  if (!tag) {
    throw new UsageError(`source "${source}" needs a tag: oci:DIR[:REF]=TAG`);
  }
  parseTag(tag);
  return { dir, ref, tag };
}

/**
 * Runs the command; resolves to the exit status. Errors are printed as one
 * line on stderr.
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * const status = await main(["--help"]);
 * ```
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (args.sources.length === 0) throw new UsageError("no SOURCE given");
    const toStdout = args.output === undefined || args.output === "-";
    if (args.output === undefined && process.stdout.isTTY) {
      throw new UsageError(
        "refusing to write a tarball to a terminal; use -o FILE or redirect stdout",
      );
    }
    const entries: [string, Image][] = [];
    for (const source of args.sources) {
      const { dir, ref, tag } = await parseSource(source);
      entries.push([tag, await fromOciLayout(dir, ref)]);
    }
    const tar = save(entries, { verify: args.verify, layers: args.layers });
    if (toStdout) await writeStdout(tar);
    else await writeFileAtomic(args.output!, tar);
    return 0;
  } catch (error) {
    process.stderr.write(`docker-save: ${messageOf(error)}\n`);
    return 1;
  }
}

/** A command-line mistake. */
class UsageError extends Error {
  constructor(message: string) {
    super(`${message} (see --help)`);
    this.name = "UsageError";
  }
}

function messageOf(error: unknown): string {
  if (error instanceof DockerSaveError || error instanceof UsageError) {
    return error.message.replaceAll("\n", " ");
  }
  return String((error as Error)?.message ?? error).replaceAll("\n", " ");
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return path !== "" && (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function writeStdout(stream: ReadableStream<Uint8Array>): Promise<void> {
  const out = process.stdout;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!out.write(value)) {
        await new Promise<void>((resolve, reject) => {
          const onError = (error: Error) => reject(error);
          out.once("error", onError);
          out.once("drain", () => {
            out.off("error", onError);
            resolve();
          });
        });
      }
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
}

if (import.meta.main ?? isNodeEntry()) {
  process.exitCode = await main(process.argv.slice(2));
}

function isNodeEntry(): boolean {
  const entry = process.argv[1];
  return entry !== undefined &&
    new URL(import.meta.url).pathname.endsWith(entry.replace(/^.*\//, "/"));
}
