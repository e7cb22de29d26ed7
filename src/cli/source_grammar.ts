/**
 * The SOURCE grammar of the command line: `oci:`, `oci-archive:`,
 * `docker-archive:` and registry references, split into what each source
 * needs.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { parseDockerArchiveSource } from "../sources/docker_archive.ts";
import { parseOciArchiveSource } from "../sources/oci_archive.ts";
import { parseReference } from "../sources/_reference.ts";
import { parseTag } from "../tag.ts";
import { UsageError } from "./errors.ts";

/**
 * An `oci:` SOURCE argument, split.
 *
 * @example
 * ```ts
 * import type { OciSource } from "./source_grammar.ts";
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
 * import type { RegistrySource } from "./source_grammar.ts";
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
 * import { type CliSource, parseSource } from "./source_grammar.ts";
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
 * import type { ArchiveSource } from "./source_grammar.ts";
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
 * import { parseSource } from "./source_grammar.ts";
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

async function isDirectory(path: string): Promise<boolean> {
  try {
    return path !== "" && (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
