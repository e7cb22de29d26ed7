/**
 * The `docker-save` command: the only reader of argv and stdout. It turns
 * SOURCE arguments (OCI layouts, archives, registry references) into images, saves
 * them, and writes a file or stdout, with progress on stderr.
 *
 * ```
 * deno run -A src/cli.ts -o alpine.tar alpine:3.20
 * deno run -A src/cli.ts -o out.tar oci:./oci:app=registry.example.com/app:v1
 * ```
 *
 * @module
 */

import process from "node:process";
import { stat } from "node:fs/promises";
import { Progress } from "./cli_progress.ts";
import { DockerSaveError } from "./errors.ts";
import type { Image } from "./image.ts";
import {
  type LayerMode,
  save,
  type SaveFormat,
  type SaveOptions,
} from "./save.ts";
import { saveToFile } from "./save_to_file.ts";
import type { ArchiveIndex } from "./sources/_archive_index.ts";
import {
  fromDockerArchive,
  indexDockerArchive,
  parseDockerArchiveSource,
} from "./sources/docker_archive.ts";
import {
  fromOciArchive,
  indexOciArchive,
  parseOciArchiveSource,
} from "./sources/oci_archive.ts";
import { fromOciLayout } from "./sources/oci_layout.ts";
import { parseReference } from "./sources/_reference.ts";
import {
  fromRegistry,
  type RegistryCredentials,
  type UncompressedSizes,
} from "./sources/registry.ts";
import { parseTag } from "./tag.ts";

export type { LayerMode, SaveFormat } from "./save.ts";
export type {
  RegistryCredentials,
  UncompressedSizes,
} from "./sources/registry.ts";

/**
 * The `--help` text.
 *
 * @example
 * ```ts
 * import { USAGE } from "./cli.ts";
 * console.log(USAGE);
 * ```
 */
export const USAGE = `Usage: docker-save [options] SOURCE...

Write a docker save-compatible tarball (what \`docker load\` reads) of one or
more images, byte-identical to containerregistry's multi_image_tarball.

Sources (any number, mixed):
  [docker://]REF[=TAG]  pull REF = [REGISTRY/]REPO[:TAG|@DIGEST] from a
                        registry (Docker Hub by default, library/ for
                        one-part names), saved as TAG. TAG defaults to REF as
                        written (REPO:latest without a tag; a REF with only a
                        digest needs =TAG). localhost, 127.0.0.0/8 and [::1]
                        registries are reached over plain HTTP.
  oci:DIR[:REF][=TAG]   the image of OCI layout DIR whose index entry has the
                        org.opencontainers.image.ref.name REF (REF may be
                        omitted when the index has one entry), saved as TAG.
                        TAG defaults to REF.
  oci-archive:FILE[:REF][=TAG]
                        the same, from an OCI layout tarball
  docker-archive:FILE[:TAG][=NEWTAG]
                        the image tagged TAG in a docker save tarball (any
                        docker or podman version's, ours, or gzipped; TAG may
                        be omitted when it holds one image), saved as NEWTAG,
                        else TAG, else its first tag there. A tarball in the
                        reference's format keeps its v1 ids.

Options:
  -o, --output FILE     write FILE, atomically: a temporary file renamed at
                        the end, removed on error. "-" writes stdout. Without
                        -o, stdout is used when it is not a terminal.
      --format FORMAT   docker (default: the reference's format, byte-exact),
                        oci (an OCI image layout tarball), or docker+oci
                        (both: classic docker load and the containerd store)
      --platform P      os/arch[/variant] to take from multi-platform images
                        (default linux/amd64)
      --layers MODE     uncompressed (default; the reference's format: each
                        layer.tar is the layer tar itself) or compressed (each
                        layer.tar is the blob as stored; one pass, no gunzip;
                        docker, podman and skopeo load it)
      --creds USER:PASS credentials for the registries of REF sources (else
                        auths in $DOCKER_CONFIG/config.json or
                        ~/.docker/config.json; credential helpers are not run)
      --insecure-registry HOST
                        reach HOST (host or host:port) over plain HTTP;
                        repeatable
      --allow-foreign-layers
                        fetch foreign (non-distributable) layers from the
                        URLs their manifest gives
      --uncompressed-sizes HOW
                        trailer (default: a layer's size from its gzip
                        trailer, one download per layer; checked while
                        writing) or count (download and gunzip each layer
                        twice, once to count)
  -q, --quiet           no progress on stderr (errors are still printed)
      --no-verify       skip the sha256 checks of blobs and diff_ids (a
                        corrupt blob then goes into the tarball unnoticed)
  -h, --help            show this help

Progress goes to stderr: a live view on a terminal (per-layer bytes, total,
rate, ETA), else one line per layer read.

Exit status: 0 when the whole tarball was written; otherwise 1, with a
one-line error on stderr.

Examples:
  docker-save -o alpine.tar alpine:3.20
  docker-save --platform linux/arm64 -o app.tar ghcr.io/org/app:1.2=app:1.2
  docker-save -o app.tar oci:./oci:app=registry.example.com/app:v1
  docker-save oci:./layout=app:v1 localhost:5000/tool:2 > both.tar
`;

/**
 * Parsed command line.
 *
 * @example
 * ```ts
 * import { type CliArgs, parseArgs } from "./cli.ts";
 * const args: CliArgs = parseArgs(["-q", "alpine"]);
 * ```
 */
export interface CliArgs {
  /** `-o` value; `undefined` when not given. */
  output?: string;
  /** The SOURCE arguments. */
  sources: string[];
  /** `--no-verify`. */
  verify: boolean;
  /** `--layers`. */
  layers: LayerMode;
  /** `--format`. */
  format: SaveFormat;
  /** `--help`. */
  help: boolean;
  /** `--platform`; `undefined` when not given. */
  platform?: string;
  /** `--quiet`. */
  quiet: boolean;
  /** `--creds`, split at the first colon. */
  credentials?: RegistryCredentials;
  /** Every `--insecure-registry`. */
  insecure: string[];
  /** `--allow-foreign-layers`. */
  allowForeignLayers: boolean;
  /** `--uncompressed-sizes`. */
  uncompressedSizes: UncompressedSizes;
}

/**
 * Parses the command line (without the runtime and script names).
 *
 * @example
 * ```ts
 * import { parseArgs } from "./cli.ts";
 * parseArgs(["-o", "a.tar", "--platform", "linux/arm64", "alpine:3.20"]);
 * // { output: "a.tar", platform: "linux/arm64", sources: ["alpine:3.20"], … }
 * ```
 */
export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    sources: [],
    verify: true,
    layers: "uncompressed",
    format: "docker",
    help: false,
    quiet: false,
    insecure: [],
    allowForeignLayers: false,
    uncompressedSizes: "trailer",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // --name VALUE or --name=VALUE
    const valueOf = (name: string): string | undefined => {
      if (arg === name) {
        if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
        return argv[++i];
      }
      return arg.startsWith(`${name}=`)
        ? arg.slice(name.length + 1)
        : undefined;
    };
    let value: string | undefined;
    if (arg === "-h" || arg === "--help") args.help = true;
    else if (arg === "--no-verify") args.verify = false;
    else if (arg === "-q" || arg === "--quiet") args.quiet = true;
    else if (arg === "--allow-foreign-layers") args.allowForeignLayers = true;
    else if ((value = valueOf("--platform")) !== undefined) {
      if (!/^[^/\s]+\/[^/\s]+(\/[^/\s]+)?$/.test(value)) {
        throw new UsageError(
          `--platform takes os/arch[/variant], not "${value}"`,
        );
      }
      args.platform = value;
    } else if ((value = valueOf("--creds")) !== undefined) {
      const colon = value.indexOf(":");
      if (colon <= 0) throw new UsageError("--creds takes USER:PASS");
      args.credentials = {
        username: value.slice(0, colon),
        password: value.slice(colon + 1),
      };
    } else if ((value = valueOf("--insecure-registry")) !== undefined) {
      args.insecure.push(value);
    } else if ((value = valueOf("--uncompressed-sizes")) !== undefined) {
      if (value !== "trailer" && value !== "count") {
        throw new UsageError(
          `--uncompressed-sizes takes trailer or count, not "${value}"`,
        );
      }
      args.uncompressedSizes = value;
    } else if ((value = valueOf("--layers")) !== undefined) {
      if (value !== "uncompressed" && value !== "compressed") {
        throw new UsageError(
          `--layers takes uncompressed or compressed, not "${value}"`,
        );
      }
      args.layers = value;
    } else if ((value = valueOf("--format")) !== undefined) {
      if (value !== "docker" && value !== "oci" && value !== "docker+oci") {
        throw new UsageError(
          `--format takes docker, oci or docker+oci, not "${value}"`,
        );
      }
      args.format = value;
    } else if (
      (value = valueOf("-o") ?? valueOf("--output")) !== undefined
    ) args.output = value;
    else if (arg.startsWith("-") && arg !== "-") {
      throw new UsageError(`unknown option "${arg}"`);
    } else args.sources.push(arg);
  }
  return args;
}

/**
 * An `oci:` SOURCE argument, split.
 *
 * @example
 * ```ts
 * import type { OciSource } from "./cli.ts";
 * const source: OciSource = { kind: "oci", dir: "./oci", ref: "app", tag: "app:v1" };
 * ```
 */
export interface OciSource {
  /** Always `"oci"`. */
  kind: "oci";
  /** The layout directory. */
  dir: string;
  /** The index entry's ref name, if given. */
  ref?: string;
  /** The tag to save it as. */
  tag: string;
}

/**
 * A registry SOURCE argument, split.
 *
 * @example
 * ```ts
 * import type { RegistrySource } from "./cli.ts";
 * const source: RegistrySource = {
 *   kind: "registry",
 *   reference: "alpine:3.20",
 *   tag: "alpine:3.20",
 * };
 * ```
 */
export interface RegistrySource {
  /** Always `"registry"`. */
  kind: "registry";
  /** The reference as written, without `docker://`. */
  reference: string;
  /** The tag to save it as. */
  tag: string;
}

/**
 * A SOURCE argument, split.
 *
 * @example
 * ```ts
 * import { type CliSource, parseSource } from "./cli.ts";
 * const source: CliSource = await parseSource("alpine:3.20");
 * if (source.kind === "registry") console.log(source.reference);
 * ```
 */
export type CliSource = OciSource | RegistrySource | ArchiveSource;

/**
 * A `docker-archive:` or `oci-archive:` SOURCE argument, split.
 *
 * @example
 * ```ts
 * import type { ArchiveSource } from "./cli.ts";
 * const source: ArchiveSource = { kind: "docker-archive", path: "a.tar", name: "app:v1" };
 * ```
 */
export interface ArchiveSource {
  /** Which archive. */
  kind: "docker-archive" | "oci-archive";
  /** The archive file. */
  path: string;
  /** The tag (docker) or ref (OCI) to read, if given. */
  name?: string;
  /** The tag to save it as, if given. */
  tag?: string;
}

// Other tools' transports, refused by name rather than pulled as references.
const OTHER_TRANSPORTS = /^(dir|containers-storage|docker-daemon|sif|tarball):/;

/**
 * Splits a SOURCE: `oci:DIR[:REF][=TAG]` (DIR is the longest-matching
 * existing directory before a `:`, so both DIR and REF may contain colons) or
 * `[docker://]REF[=TAG]` (TAG defaults to REF as written, with `:latest`
 * when REF has no tag).
 *
 * @example
 * ```ts
 * import { parseSource } from "./cli.ts";
 * await parseSource("oci:./oci:app=example.com/app:v1");
 * // { kind: "oci", dir: "./oci", ref: "app", tag: "example.com/app:v1" }
 * await parseSource("docker://alpine:3.20");
 * // { kind: "registry", reference: "alpine:3.20", tag: "alpine:3.20" }
 * ```
 */
export async function parseSource(source: string): Promise<CliSource> {
  for (const kind of ["docker-archive", "oci-archive"] as const) {
    if (source.startsWith(`${kind}:`)) {
      const { path, newTag, name } = kind === "docker-archive"
        ? await parseDockerArchiveSource(source).then((p) => ({
          ...p,
          name: p.tag,
        }))
        : await parseOciArchiveSource(source).then((p) => ({
          ...p,
          name: p.ref,
        }));
      return { kind, path, name, tag: newTag ?? name };
    }
  }
  if (!source.startsWith("oci:")) return parseRegistrySource(source);
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
  return { kind: "oci", dir, ref, tag };
}

function parseRegistrySource(source: string): RegistrySource {
  if (OTHER_TRANSPORTS.test(source)) {
    throw new UsageError(
      `source "${source}" is not supported; use oci:DIR[:REF][=TAG] or [docker://]REF[=TAG]`,
    );
  }
  let reference = source.startsWith("docker://") ? source.slice(9) : source;
  let tag: string | undefined;
  const equals = reference.indexOf("=");
  if (equals >= 0) {
    tag = reference.slice(equals + 1);
    reference = reference.slice(0, equals);
    if (!tag) throw new UsageError(`source "${source}" has an empty TAG`);
  }
  const parsed = parseReference(reference);
  if (tag === undefined) {
    const named = reference.replace(/@.*$/, "");
    if (
      parsed.digest !== undefined &&
      named.lastIndexOf(":") <= named.lastIndexOf("/")
    ) {
      throw new UsageError(
        `source "${source}" is pulled by digest: name the tag to save it as, REF=TAG`,
      );
    }
    // Without a tag the reference pulls :latest; say so in the tag (a bare
    // "localhost:5000/app" would not parse as a tag).
    tag = parsed.digest === undefined && parsed.tag === "latest" &&
        !/:[^/]*$/.test(named)
      ? `${named}:latest`
      : named;
  }
  parseTag(tag);
  return { kind: "registry", reference, tag };
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
  let progress: Progress | undefined;
  let args: CliArgs | undefined;
  try {
    args = parseArgs(argv);
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
    const sources: CliSource[] = [];
    for (const source of args.sources) sources.push(await parseSource(source));
    progress = args.quiet ? undefined : new Progress({
      write: (text) => process.stderr.write(text),
      tty: process.stderr.isTTY === true,
      columns: () => process.stderr.columns || 80,
    });
    const entries: [string, Image][] = [];
    const indexes = new Map<string, Promise<ArchiveIndex>>();
    for (const source of sources) {
      const [tag, image] = await openSource(source, args, indexes);
      await progress?.expect(image, tag);
      entries.push([tag, image]);
    }
    const options: SaveOptions = {
      verify: args.verify,
      layers: args.layers,
      format: args.format,
      onProgress: progress?.listener,
    };
    // A file can seek: each layer is then decompressed once.
    if (toStdout) await writeStdout(save(entries, options));
    else await saveToFile(args.output!, entries, options);
    progress?.finish();
    return 0;
  } catch (error) {
    progress?.finish();
    process.stderr.write(
      `docker-save: ${messageOf(error)}${hintOf(error, args)}\n`,
    );
    return 1;
  }
}

// Opens a source as an image and the tag to save it under. An archive named
// by several sources is indexed once.
async function openSource(
  source: CliSource,
  args: CliArgs,
  indexes: Map<string, Promise<ArchiveIndex>>,
): Promise<[string, Image]> {
  const platform = args.platform;
  switch (source.kind) {
    case "oci":
      return [
        source.tag,
        await fromOciLayout(source.dir, source.ref, { platform }),
      ];
    case "registry":
      return [
        source.tag,
        await fromRegistry(source.reference, {
          platform,
          credentials: args.credentials,
          insecure: args.insecure,
          allowForeignLayers: args.allowForeignLayers,
          uncompressedSizes: args.uncompressedSizes,
        }),
      ];
  }
  const key = `${source.kind}:${source.path}`;
  if (!indexes.has(key)) {
    indexes.set(
      key,
      source.kind === "docker-archive"
        ? indexDockerArchive(source.path)
        : indexOciArchive(source.path),
    );
  }
  const index = await indexes.get(key)!;
  if (source.kind === "oci-archive") {
    const image = await fromOciArchive(source.path, source.name, {
      platform,
      index,
    });
    if (!source.tag) {
      throw new UsageError(
        `source "oci-archive:${source.path}" needs a tag: oci-archive:FILE[:REF]=TAG`,
      );
    }
    return [source.tag, image];
  }
  const image = await fromDockerArchive(source.path, source.name, { index });
  const tag = source.tag ?? image.repoTags[0];
  if (!tag) {
    throw new UsageError(
      `source "docker-archive:${source.path}" has no tag there: docker-archive:FILE=TAG`,
    );
  }
  return [tag, image];
}

// A wrong gzip-trailer size shows as a size mismatch of the uncompressed
// layer; say how to avoid it.
function hintOf(error: unknown, args: CliArgs | undefined): string {
  return error instanceof DockerSaveError && error.code === "SIZE_MISMATCH" &&
      error.message.includes("uncompressed layer") &&
      args?.uncompressedSizes === "trailer"
    ? " (if the layer is a multi-member gzip or over 4 GiB larger than its blob, retry with --uncompressed-sizes count)"
    : "";
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
