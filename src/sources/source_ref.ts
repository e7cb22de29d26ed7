/**
 * The SOURCE grammar: where an image comes from, written as one string.
 *
 * ```
 * oci:DIR[:REF][=TAG]                  an OCI layout directory
 * oci-archive:FILE[:REF][=TAG]         an OCI layout tarball
 * docker-archive:FILE[:TAG][=NEWTAG]   a `docker save` tarball
 * [docker://]REFERENCE[=TAG]           an image reference (a registry's)
 * ```
 *
 * One algorithm for every kind. The location (DIR or FILE) is the longest
 * prefix of what follows the transport that ends before a `:` or `=`, or at
 * the end, and exists (a directory for `oci:`, a file for the archives), so
 * a path may itself contain `:` and `=`. What follows the location is
 * `[:NAME][=TAG]`: NAME runs to the first `=`, TAG is the rest. Neither may
 * contain `=` (OCI ref names and tags cannot). An image reference has no
 * path to look for: it is everything before the first `=`.
 *
 * skopeo (containers/image `SplitPathAndImage`, `docker-archive`'s
 * `ParseReference`) splits at the first `:`, so its paths cannot contain one;
 * every source skopeo reads whose path exists parses the same here. Other
 * transports of skopeo's are refused by name rather than pulled as
 * image references (`dir:x` would otherwise be Docker Hub's `dir:x`).
 *
 * @module
 */

import { DockerSaveError } from "../model/errors.ts";
import { importNode } from "../runtime/_import.ts";
import { parseTag } from "../model/tag.ts";
import { parseReference } from "../model/image_reference.ts";

/** A source kind: its transport prefix without the `:`. */
export type SourceTransport =
  | "oci"
  | "oci-archive"
  | "docker-archive"
  | "docker";

/** A SOURCE string, split. */
export interface SourceRef {
  /** Which kind of source. */
  transport: SourceTransport;
  /**
   * The layout directory (`oci`), the archive file, or the image
   * reference as written without `docker://` (`docker`).
   */
  location: string;
  /**
   * What follows `LOCATION:`: the index entry's ref name (`oci`,
   * `oci-archive`) or the `RepoTags` entry to read (`docker-archive`).
   * Never set for `docker`.
   */
  name?: string;
  /** The tag after `=`, checked with `parseTag`. */
  newTag?: string;
}

/** Options for `parseSourceRef`. */
export interface ParseSourceRefOptions {
  /**
   * The only transport accepted: another prefix is a `TypeError` (for
   * parsers of one kind, such as `parseDockerArchiveSource`).
   */
  transport?: Exclude<SourceTransport, "docker">;
  /**
   * Whether a path is an existing regular file.
   * @default {a `node:fs` stat; `false` where the runtime has none}
   */
  isFile?: (path: string) => Promise<boolean>;
  /**
   * Whether a path is an existing directory.
   * @default {a `node:fs` stat; `false` where the runtime has none}
   */
  isDirectory?: (path: string) => Promise<boolean>;
}

const LOCAL_TRANSPORTS = ["oci-archive", "docker-archive", "oci"] as const;
const REGISTRY_PREFIX = "docker://";
// Other tools' transports, refused by name rather than pulled as image
// references.
const OTHER_TRANSPORTS = /^(dir|containers-storage|docker-daemon|sif|tarball):/;

/**
 * Splits a SOURCE string (see the module notes for the grammar). Throws
 * `DockerSaveError`: `BAD_LAYOUT` when no prefix of a local source's path
 * exists, `BAD_TAG` for an empty NAME or a bad TAG, `BAD_REFERENCE` for a
 * bad image reference or another tool's transport.
 *
 * @example
 * ```ts
 * import { parseSourceRef } from "./source_ref.ts";
 * await parseSourceRef("oci:./oci:app=example.com/app:v1");
 * // { transport: "oci", location: "./oci", name: "app", newTag: "example.com/app:v1" }
 * await parseSourceRef("docker://alpine:3.20");
 * // { transport: "docker", location: "alpine:3.20" }
 * ```
 */
export async function parseSourceRef(
  source: string,
  options: ParseSourceRefOptions = {},
): Promise<SourceRef> {
  const transport = LOCAL_TRANSPORTS.find((name) =>
    source.startsWith(`${name}:`)
  );
  if (options.transport !== undefined && transport !== options.transport) {
    throw new TypeError(
      `Cannot parse source "${source}": it does not start with "${options.transport}:"`,
    );
  }
  if (transport === undefined) return parseRegistrySource(source);
  const exists = transport === "oci"
    ? options.isDirectory ?? isDirectory
    : options.isFile ?? isRegularFile;
  const rest = source.slice(transport.length + 1);
  for (let end = rest.length; end > 0; end--) {
    if (end < rest.length && rest[end] !== ":" && rest[end] !== "=") continue;
    const location = rest.slice(0, end);
    if (!await exists(location)) continue;
    return {
      transport,
      location,
      ...splitNameAndTag(source, location, rest.slice(end)),
    };
  }
  throw new DockerSaveError(
    "BAD_LAYOUT",
    `Cannot read source "${source}": no such ${
      transport === "oci" ? "directory" : "file"
    }`,
  );
}

function parseRegistrySource(source: string): SourceRef {
  if (OTHER_TRANSPORTS.test(source)) {
    throw new DockerSaveError(
      "BAD_REFERENCE",
      `Cannot parse source "${source}": its transport is not supported; use oci:, oci-archive:, docker-archive: or [docker://]REF`,
    );
  }
  const rest = source.startsWith(REGISTRY_PREFIX)
    ? source.slice(REGISTRY_PREFIX.length)
    : source;
  const equals = rest.indexOf("=");
  const location = equals < 0 ? rest : rest.slice(0, equals);
  parseReference(location);
  const { newTag } = splitNameAndTag(
    source,
    location,
    rest.slice(location.length),
  );
  return newTag === undefined
    ? { transport: "docker", location }
    : { transport: "docker", location, newTag };
}

// `[:NAME][=TAG]`, what follows a source's location.
function splitNameAndTag(
  source: string,
  location: string,
  tail: string,
): { name?: string; newTag?: string } {
  const parts: { name?: string; newTag?: string } = {};
  const equals = tail.indexOf("=");
  if (tail.startsWith(":")) {
    parts.name = tail.slice(1, equals < 0 ? undefined : equals);
    if (!parts.name) {
      throw new DockerSaveError(
        "BAD_TAG",
        `Cannot parse source "${source}": the name after "${location}:" is empty`,
      );
    }
  }
  if (equals >= 0) {
    parts.newTag = tail.slice(equals + 1);
    if (!parts.newTag || parts.newTag.includes("=")) {
      throw new DockerSaveError(
        "BAD_TAG",
        `Cannot parse source "${source}": "${parts.newTag}" after "=" is not a tag`,
      );
    }
    parseTag(parts.newTag);
  }
  return parts;
}

async function isRegularFile(path: string): Promise<boolean> {
  return (await statOf(path))?.isFile() ?? false;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await statOf(path))?.isDirectory() ?? false;
}

async function statOf(
  path: string,
): Promise<{ isFile(): boolean; isDirectory(): boolean } | undefined> {
  const fsp = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fsp || path === "") return undefined;
  try {
    return await fsp.stat(path);
  } catch {
    return undefined;
  }
}
