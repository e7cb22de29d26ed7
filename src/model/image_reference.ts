/**
 * Registry references as docker reads them: `[registry/]repo[:tag][@digest]`,
 * with Docker Hub defaults (`docker.io`, `library/` for official images), after
 * distribution's `reference.ParseNormalizedNamed`.
 *
 * This differs on purpose from `tag.ts`, which parses *output* tags the way
 * the Python reference does (nothing normalised).
 *
 * @module
 */

import { DockerSaveError } from "./errors.ts";

/**
 * A parsed registry reference.
 *
 * @example
 * ```ts
 * import type { Reference } from "./image_reference.ts";
 * const ref: Reference = { registry: "ghcr.io", repository: "org/app", tag: "1.2" };
 * ```
 */
export interface Reference {
  /** The registry as named: `docker.io` by default, else `host[:port]`. */
  registry: string;
  /** The repository path, `library/`-prefixed for Docker Hub official images. */
  repository: string;
  /** The tag; `latest` when neither a tag nor a digest was given. */
  tag?: string;
  /** `sha256:<hex>` when pulled by digest. */
  digest?: string;
}

/**
 * Docker Hub's name in references.
 *
 * @example
 * ```ts
 * import { DOCKER_HUB, parseReference } from "./image_reference.ts";
 * parseReference("alpine").registry === DOCKER_HUB; // true
 * ```
 */
export const DOCKER_HUB = "docker.io";
/**
 * Where Docker Hub's registry API lives.
 *
 * @example
 * ```ts
 * import { apiHost, DOCKER_HUB_API } from "./image_reference.ts";
 * apiHost("docker.io") === DOCKER_HUB_API; // true
 * ```
 */
export const DOCKER_HUB_API = "registry-1.docker.io";

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Parses `[registry/]repo[:tag][@digest]` with docker's defaults: no
 * registry means Docker Hub (`docker.io`), a one-part Docker Hub repository
 * gets `library/`, and no tag or digest means `:latest`. The registry is the
 * first path part when it has a `.` or `:`, is `localhost`, or has capitals.
 * Throws `DockerSaveError` `BAD_REFERENCE`.
 *
 * @example
 * ```ts
 * import { parseReference } from "./image_reference.ts";
 * parseReference("alpine");
 * // { registry: "docker.io", repository: "library/alpine", tag: "latest" }
 * parseReference("localhost:5000/team/app@sha256:" + "a".repeat(64));
 * // { registry: "localhost:5000", repository: "team/app", digest: "sha256:aaa…" }
 * ```
 */
export function parseReference(text: string): Reference {
  const bad = (reason: string) =>
    new DockerSaveError(
      "BAD_REFERENCE",
      `Cannot parse reference "${text}": ${reason}`,
    );
  // A URL pasted as a reference (docker, skopeo and crane take none).
  const scheme = text.match(/^[a-z][a-z0-9+.-]*:\/\//i)?.[0];
  if (scheme) {
    throw bad(
      `a reference has no scheme; drop "${scheme}" (${
        text.slice(scheme.length)
      })`,
    );
  }
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw bad(`digest "${digest}" is not "sha256:" and 64 lowercase hex`);
    }
  }
  let registry = DOCKER_HUB;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes(".") || first.includes(":") || first === "localhost" ||
      first !== first.toLowerCase()
    ) {
      registry = first;
      rest = rest.slice(slash + 1);
      if (!DOMAIN.test(registry)) {
        throw bad(`registry "${registry}" is not a valid host[:port]`);
      }
      const port = registry.match(/:(\d+)$/)?.[1];
      if (port !== undefined && Number(port) > 65535) {
        throw bad(`registry "${registry}" has port ${port}, above 65535`);
      }
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw bad(
        `tag "${tag}" must be 1-128 of A-Za-z0-9_.- and not start with . or -`,
      );
    }
  }
  if (rest === "") throw bad("the repository is empty");
  if (rest !== rest.toLowerCase()) {
    throw bad(`repository "${rest}" must be lowercase`);
  }
  for (const part of rest.split("/")) {
    if (!PATH_COMPONENT.test(part)) {
      throw bad(
        `repository part "${part}" must be a-z0-9 joined by one ".", "_", "__" or dashes`,
      );
    }
  }
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !rest.includes("/")) rest = `library/${rest}`;
  if (`${registry}/${rest}`.length > 255) {
    throw bad("the name is longer than 255 characters");
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository: rest, tag, digest };
}

/**
 * The reference in its full form: `registry/repository[:tag][@digest]`.
 *
 * @example
 * ```ts
 * import { formatReference, parseReference } from "./image_reference.ts";
 * formatReference(parseReference("alpine:3.20")); // "docker.io/library/alpine:3.20"
 * ```
 */
export function formatReference(reference: Reference): string {
  return `${reference.registry}/${reference.repository}${
    reference.tag === undefined ? "" : `:${reference.tag}`
  }${reference.digest === undefined ? "" : `@${reference.digest}`}`;
}

/**
 * The host to send API requests to: `registry-1.docker.io` for Docker Hub,
 * else the registry as named.
 *
 * @example
 * ```ts
 * import { apiHost } from "./image_reference.ts";
 * apiHost("docker.io"); // "registry-1.docker.io"
 * ```
 */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/**
 * Whether a `host[:port]` is a loopback address (`localhost`, `127.0.0.0/8`,
 * `[::1]`), which docker reaches over plain HTTP.
 *
 * @example
 * ```ts
 * import { isLoopback } from "./image_reference.ts";
 * isLoopback("127.0.0.1:5000"); // true
 * ```
 */
export function isLoopback(host: string): boolean {
  const name = hostname(host);
  return name === "localhost" || name === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/**
 * The host name of `host[:port]` (an IPv6 address keeps its brackets).
 *
 * @example
 * ```ts
 * import { hostname } from "./image_reference.ts";
 * hostname("[::1]:5000"); // "[::1]"
 * ```
 */
export function hostname(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.indexOf(":");
  return (colon < 0 ? host : host.slice(0, colon)).toLowerCase();
}
