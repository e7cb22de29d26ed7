/**
 * The SOURCE grammar of the command line: `oci:`, `oci-archive:`,
 * `docker-archive:` and image references, split into what each source
 * needs.
 *
 * @module
 */

import { parseReference } from "../model/image_reference.ts";
import { parseSourceRef } from "../sources/source_ref.ts";
import { parseTag } from "../model/tag.ts";
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
  /** The image reference as written, without `docker://`. */
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

/**
 * Splits a SOURCE: `oci:DIR[:REF][=TAG]` (DIR is the longest-matching
 * existing directory before a `:`, so both DIR and REF may contain colons),
 * the archives, or `[docker://]REF[=TAG]` (TAG defaults to REF as written,
 * with `:latest` when REF has no tag); the grammar itself is
 * `sources/source_ref.ts`.
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
  const { transport, location, name, newTag } = await parseSourceRef(source);
  switch (transport) {
    case "docker":
      return {
        kind: "registry",
        reference: location,
        tag: newTag ?? registryTag(source, location),
      };
    case "oci": {
      const tag = newTag ?? name;
      if (!tag) {
        throw new UsageError(
          `source "${source}" needs a tag: oci:DIR[:REF]=TAG`,
        );
      }
      parseTag(tag);
      return { kind: "oci", dir: location, ref: name, tag };
    }
    default:
      return { kind: transport, path: location, name, tag: newTag ?? name };
  }
}

// The tag a registry source without =TAG is saved as: REF as written.
function registryTag(source: string, reference: string): string {
  const parsed = parseReference(reference);
  const named = reference.replace(/@.*$/, "");
  if (
    parsed.digest !== undefined &&
    named.lastIndexOf(":") <= named.lastIndexOf("/")
  ) {
    throw new UsageError(
      `source "${source}" is pulled by digest: name the tag to save it as, REF=TAG`,
    );
  }
  // Without a tag the image reference pulls :latest; say so in the tag (a bare
  // "localhost:5000/app" would not parse as a tag).
  const tag = parsed.digest === undefined && parsed.tag === "latest" &&
      !/:[^/]*$/.test(named)
    ? `${named}:latest`
    : named;
  parseTag(tag);
  return tag;
}
