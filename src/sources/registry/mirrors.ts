/**
 * Where an image is pulled from, in the order tried: Docker Hub's mirrors
 * (docker's `registry-mirrors`: the `registryMirrors` option,
 * `--registry-mirror`), then the mirrors registries.conf gives the name,
 * then the registry itself (or the `location` registries.conf moves it to).
 * A mirror that cannot serve (404, 5xx, a failed connection) gives way to
 * the next; what is served is checked against its digests all the same.
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import type { ConfRegistry } from "./registries_conf.ts";
import { matchRegistry } from "./registries_conf.ts";

/**
 * One place to pull a repository from.
 *
 * @example
 * ```ts
 * import type { Endpoint } from "./mirrors.ts";
 * const endpoint: Endpoint = {
 *   registry: "mirror.lan:5000", repository: "library/alpine", mirror: true,
 * };
 * ```
 */
export interface Endpoint {
  /** `host[:port]`. */
  registry: string;
  /** The repository there. */
  repository: string;
  /** A mirror (else the registry, or where registries.conf moved it). */
  mirror: boolean;
  /** `"http"` or `"https"` when the configuration says; else decided by host. */
  scheme?: "http" | "https";
}

/**
 * What `endpointsFor` needs to know.
 *
 * @example
 * ```ts
 * import type { MirrorConfig } from "./mirrors.ts";
 * const config: MirrorConfig = { registryMirrors: ["mirror.gcr.io"], conf: [] };
 * ```
 */
export interface MirrorConfig {
  /** Mirrors of Docker Hub: `host[:port]` or `http[s]://host[:port]`. */
  registryMirrors?: readonly string[];
  /** registries.conf's `[[registry]]` tables. */
  conf: readonly ConfRegistry[];
}

/**
 * The endpoints for `registry/repository`, mirrors first. Throws
 * `DockerSaveError` `BAD_REFERENCE` when registries.conf blocks the name,
 * `BAD_URL` for a mirror that is not a host.
 *
 * @example
 * ```ts
 * import { endpointsFor } from "./mirrors.ts";
 * endpointsFor("docker.io", "library/alpine", false, {
 *   registryMirrors: ["http://127.0.0.1:5001"], conf: [],
 * });
 * // [{ registry: "127.0.0.1:5001", repository: "library/alpine", mirror: true, scheme: "http" },
 * //  { registry: "docker.io", repository: "library/alpine", mirror: false }]
 * ```
 */
export function endpointsFor(
  registry: string,
  repository: string,
  byDigest: boolean,
  config: MirrorConfig,
): Endpoint[] {
  const endpoints: Endpoint[] = [];
  if (registry === "docker.io") {
    for (const mirror of config.registryMirrors ?? []) {
      endpoints.push({ ...mirrorHost(mirror), repository, mirror: true });
    }
  }
  const name = `${registry}/${repository}`;
  const entry = matchRegistry(config.conf, name);
  if (!entry) {
    endpoints.push({ registry, repository, mirror: false });
    return endpoints;
  }
  if (entry.blocked) {
    throw new DockerSaveError(
      "BAD_REFERENCE",
      `Cannot pull ${
        untrustedText(name)
      }: registries.conf blocks ${entry.prefix}`,
    );
  }
  // A wildcard prefix is its own location: the name stays as it is.
  const rest = entry.prefix.startsWith("*.")
    ? undefined
    : name.slice(entry.prefix.length);
  const moved = (location: string) =>
    rest === undefined ? name : `${location}${rest}`;
  for (const mirror of entry.mirrors) {
    if (mirror.pullFromMirror === "digest-only" && !byDigest) continue;
    if (mirror.pullFromMirror === "tag-only" && byDigest) continue;
    endpoints.push({
      ...split(moved(mirror.location)),
      mirror: true,
      ...(mirror.insecure ? { scheme: "http" as const } : {}),
    });
  }
  endpoints.push({
    ...split(moved(entry.location)),
    mirror: false,
    ...(entry.insecure ? { scheme: "http" as const } : {}),
  });
  return endpoints;
}

/**
 * Whether a failure at a mirror lets the next endpoint be tried: not found,
 * a server error or a failed connection (after the transport's retries),
 * or a mirror that wants credentials or rate-limits us. A digest mismatch
 * or a bad manifest is not: a mirror serving wrong bytes is an error.
 *
 * @example
 * ```ts
 * import { DockerSaveError } from "../../model/errors.ts";
 * import { fallsBack } from "./mirrors.ts";
 * fallsBack(new DockerSaveError("MANIFEST_NOT_FOUND", "…")); // true
 * ```
 */
export function fallsBack(error: unknown): boolean {
  return error instanceof DockerSaveError && [
    "MANIFEST_NOT_FOUND",
    "REGISTRY_ERROR",
    "UNAUTHORIZED",
    "RATE_LIMITED",
    "TLS_UNKNOWN_CA",
    "TLS_HOSTNAME_MISMATCH",
    "TLS_CERT_EXPIRED",
    "TLS_CLIENT_CERT_REQUIRED",
    "PROXY_REFUSED",
  ].includes(error.code);
}

// A docker registry-mirrors entry: `host[:port]`, or a URL whose scheme
// says HTTP or HTTPS (docker takes URLs; a path is not supported).
function mirrorHost(mirror: string): Omit<Endpoint, "repository" | "mirror"> {
  const match = /^(?:(https?):\/\/)?([^/\s]+)\/?$/i.exec(mirror.trim());
  if (!match) {
    throw new DockerSaveError(
      "BAD_URL",
      `Cannot use registry mirror ${
        untrustedText(JSON.stringify(mirror))
      }: give host[:port] or http(s)://host[:port]`,
    );
  }
  const scheme = match[1]?.toLowerCase() as "http" | "https" | undefined;
  return { registry: match[2].toLowerCase(), ...(scheme ? { scheme } : {}) };
}

function split(name: string): { registry: string; repository: string } {
  const slash = name.indexOf("/");
  return slash < 0
    ? { registry: name, repository: "" }
    : { registry: name.slice(0, slash), repository: name.slice(slash + 1) };
}
