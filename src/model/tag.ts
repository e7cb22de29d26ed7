/**
 * Tag strings as the reference's `docker_name.Tag` reads them
 * (docs/FORMAT.md, "Tags"): `[registry/]repository[:tag]`, nothing
 * normalised.
 *
 * @module
 */

import { DockerSaveError } from "./errors.ts";

/** A parsed tag. `registry` is `""` when none was given. */
export interface ParsedTag {
  /** The registry host, kept only when the first path part has `.` or `:`. */
  registry: string;
  /** The repository path, without the registry. */
  repository: string;
  /** The tag after the last `:`, or `undefined` when none was given. */
  tag: string | undefined;
}

const REPOSITORY_CHARS = /^[a-z0-9_\-./]*$/;
const TAG_CHARS = /^[A-Za-z0-9_.-]*$/;
// urlparse("//" + registry).netloc keeps the registry whole only without a
// query or fragment start or the tab/CR/LF it deletes, and it rejects an
// unpaired IPv6 bracket.
const BAD_REGISTRY_CHARS = /[?#\t\r\n]/;

/**
 * Parses a tag the way the reference does. Throws `DockerSaveError` `BAD_TAG`
 * naming the rule a bad tag breaks.
 *
 * @example
 * ```ts
 * import { parseTag } from "./tag.ts";
 * parseTag("localhost:5000/a/b:v1");
 * // { registry: "localhost:5000", repository: "a/b", tag: "v1" }
 * ```
 */
export function parseTag(text: string): ParsedTag {
  const colon = text.lastIndexOf(":");
  const base = colon < 0 ? text : text.slice(0, colon);
  const tag = colon < 0 ? undefined : text.slice(colon + 1);
  if (tag !== undefined) {
    checkElement(text, "tag", tag, TAG_CHARS, 1, 127, "A-Za-z0-9_.-");
  }
  let registry = "";
  let repository = base;
  const slash = base.indexOf("/");
  if (slash >= 0) {
    const first = base.slice(0, slash);
    if (first.includes(".") || first.includes(":")) {
      registry = first;
      repository = base.slice(slash + 1);
    }
  }
  if (
    BAD_REGISTRY_CHARS.test(registry) ||
    registry.includes("[") !== registry.includes("]")
  ) {
    throw new DockerSaveError(
      "BAD_TAG",
      `Cannot parse tag "${text}": registry "${registry}" is not a valid host[:port]`,
    );
  }
  checkElement(
    text,
    "repository",
    repository,
    REPOSITORY_CHARS,
    2,
    255,
    "a-z0-9_-./",
  );
  return { registry, repository, tag };
}

/**
 * Throws `DockerSaveError` `BAD_TAG` unless `text` parses as a tag.
 *
 * @example
 * ```ts
 * import { assertValidTag } from "./tag.ts";
 * assertValidTag("ubuntu:22.04");
 * ```
 */
export function assertValidTag(text: string): void {
  parseTag(text);
}

/**
 * The `RepoTags` string: the tag as given, with `:latest` added when it had
 * none (docker ≥ 29 refuses untagged RepoTags; the reference wrote them
 * bare).
 *
 * @example
 * ```ts
 * import { repoTagOf } from "./tag.ts";
 * repoTagOf("ubuntu"); // "ubuntu:latest"
 * ```
 */
export function repoTagOf(text: string): string {
  return parseTag(text).tag === undefined ? `${text}:latest` : text;
}

/**
 * The `repositories` key: `registry/repository`, or just the repository.
 *
 * @example
 * ```ts
 * import { parseTag, repositoryOf } from "./tag.ts";
 * repositoryOf(parseTag("example.com/a:1")); // "example.com/a"
 * ```
 */
export function repositoryOf(parsed: ParsedTag): string {
  return parsed.registry
    ? `${parsed.registry}/${parsed.repository}`
    : parsed.repository;
}

function checkElement(
  text: string,
  what: string,
  value: string,
  chars: RegExp,
  min: number,
  max: number,
  allowed: string,
): void {
  // Python's len() counts code points.
  const length = [...value].length;
  let rule: string | undefined;
  if (length < min) rule = `must be at least ${min} characters`;
  else if (length > max) rule = `must be at most ${max} characters`;
  else if (!chars.test(value)) rule = `may only contain ${allowed}`;
  if (rule) {
    throw new DockerSaveError(
      "BAD_TAG",
      `Cannot parse tag "${text}": ${what} "${value}" ${rule}`,
    );
  }
}
