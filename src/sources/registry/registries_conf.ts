/**
 * `registries.conf` as containers-registries.conf(5) describes it, the part
 * a pull needs: `[[registry]]` tables with `prefix`, `location`, `insecure`,
 * `blocked`, `mirror-by-digest-only` and their `[[registry.mirror]]`s
 * (`location`, `insecure`, `pull-from-mirror`). Parsed with `smol-toml`
 * (loaded when a file is read). The file is found where podman and skopeo
 * find it: `CONTAINERS_REGISTRIES_CONF`, else
 * `~/.config/containers/registries.conf`, else
 * `/etc/containers/registries.conf`, the first that exists (or whose
 * `registries.conf.d/` does), then the drop-ins `registries.conf.d/*.conf`
 * next to it, in lexical order.
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { importNode } from "../../runtime/_import.ts";
import { isNotFound } from "../../runtime/fs.ts";
import { untrustedText } from "../../util/untrusted_text.ts";

/**
 * One `[[registry.mirror]]`.
 *
 * @example
 * ```ts
 * import type { ConfMirror } from "./registries_conf.ts";
 * const mirror: ConfMirror = { location: "mirror.lan/hub", insecure: false, pullFromMirror: "all" };
 * ```
 */
export interface ConfMirror {
  /** `host[:port][/namespace]` the mirror serves the prefix at. */
  location: string;
  /** Plain HTTP (and unverified TLS, which we do not do) allowed. */
  insecure: boolean;
  /** Which pulls it serves: by digest, by tag, or both. */
  pullFromMirror: "all" | "digest-only" | "tag-only";
}

/**
 * One `[[registry]]`.
 *
 * @example
 * ```ts
 * import type { ConfRegistry } from "./registries_conf.ts";
 * const entry: ConfRegistry = {
 *   prefix: "docker.io", location: "docker.io", insecure: false, blocked: false, mirrors: [],
 * };
 * ```
 */
export interface ConfRegistry {
  /** The names it applies to: `host[:port][/path]` or `*.domain`. */
  prefix: string;
  /** Where the prefix is pulled from instead (the prefix when not given). */
  location: string;
  /** Plain HTTP allowed for `location`. */
  insecure: boolean;
  /** Pulls of these names are refused. */
  blocked: boolean;
  /** The mirrors, tried in order before `location`. */
  mirrors: ConfMirror[];
}

/**
 * Reads and parses a registries.conf: `path`, else the first of the usual
 * places where the file or its drop-in directory exists; then the `*.conf`
 * files of `registries.conf.d/` next to it, in lexical order
 * (containers-registries.conf.d(5)), a later `[[registry]]` with the same
 * prefix replacing an earlier one. `[]` when there is none. Throws
 * `DockerSaveError` `BAD_REGISTRIES_CONF` for a file that cannot be read or
 * parsed.
 *
 * @example
 * ```ts
 * import { readRegistriesConf } from "./registries_conf.ts";
 * const entries = await readRegistriesConf(undefined);
 * ```
 */
export async function readRegistriesConf(
  path: string | undefined,
): Promise<ConfRegistry[]> {
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs) return [];
  const cannot = (file: string, error: unknown) =>
    new DockerSaveError(
      "BAD_REGISTRIES_CONF",
      `Cannot read registries.conf "${file}": ${
        (error as Error)?.message ?? error
      }`,
      { cause: error },
    );
  const candidates = path !== undefined ? [path] : await defaultPlaces();
  for (const candidate of candidates) {
    let text: string | undefined;
    try {
      text = await fs.readFile(candidate, "utf8");
    } catch (error) {
      if (!isNotFound(error) || path !== undefined) {
        throw cannot(candidate, error);
      }
    }
    const dropInDir = `${
      candidate.slice(0, Math.max(candidate.lastIndexOf("/") + 1, 0))
    }registries.conf.d`;
    let dropIns: string[] | undefined;
    try {
      dropIns = (await fs.readdir(dropInDir))
        .filter((name) => name.endsWith(".conf"))
        .sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
    } catch (error) {
      if (
        !isNotFound(error) && (error as { code?: string })?.code !== "ENOTDIR"
      ) {
        throw cannot(dropInDir, error);
      }
    }
    if (text === undefined && dropIns === undefined) continue;
    const byPrefix = new Map<string, ConfRegistry>();
    const apply = (entries: ConfRegistry[]) => {
      for (const entry of entries) {
        // A later entry of the same prefix replaces the earlier one.
        byPrefix.delete(entry.prefix);
        byPrefix.set(entry.prefix, entry);
      }
    };
    if (text !== undefined) apply(await parseRegistriesConf(text, candidate));
    for (const name of dropIns ?? []) {
      const file = `${dropInDir}/${name}`;
      let dropIn: string;
      try {
        dropIn = await fs.readFile(file, "utf8");
      } catch (error) {
        throw cannot(file, error);
      }
      apply(await parseRegistriesConf(dropIn, file));
    }
    return [...byPrefix.values()];
  }
  return [];
}

/**
 * The `[[registry]]` tables of registries.conf text. Throws
 * `DockerSaveError` `BAD_REGISTRIES_CONF` for bad TOML or a bad entry.
 *
 * @example
 * ```ts
 * import { parseRegistriesConf } from "./registries_conf.ts";
 * const [entry] = await parseRegistriesConf(`
 * [[registry]]
 * location = "docker.io"
 * [[registry.mirror]]
 * location = "mirror.lan:5000"
 * `, "registries.conf");
 * entry.mirrors[0].location; // "mirror.lan:5000"
 * ```
 */
export async function parseRegistriesConf(
  text: string,
  where: string,
): Promise<ConfRegistry[]> {
  // Most files (a distribution's default) hold no [[registry]] table: the
  // parser is loaded only for one that may.
  const tables = text.split("\n").some((line) =>
    !/^\s*#/.test(line) && /\[\s*\[?\s*registry\b/.test(line)
  );
  if (!tables) return [];
  const bad = (why: string, cause?: unknown) =>
    new DockerSaveError(
      "BAD_REGISTRIES_CONF",
      `Cannot use registries.conf "${where}": ${untrustedText(why, 300)}`,
      { cause },
    );
  const { parse } = await importToml();
  let document: Record<string, unknown>;
  try {
    document = parse(text) as Record<string, unknown>;
  } catch (error) {
    throw bad((error as Error)?.message ?? String(error), error);
  }
  const entries = document.registry ?? [];
  if (!Array.isArray(entries)) {
    throw bad("registry is not an array of tables");
  }
  return entries.map((table: Record<string, unknown>, i) => {
    const text = (key: string, value: unknown = table[key]) => {
      if (value === undefined) return undefined;
      if (typeof value !== "string") {
        throw bad(`registry[${i}].${key} is not a string`);
      }
      return value.trim();
    };
    const flag = (value: unknown, key: string) => {
      if (value === undefined) return false;
      if (typeof value !== "boolean") {
        throw bad(`registry[${i}].${key} is not a boolean`);
      }
      return value;
    };
    const location = text("location");
    const prefix = text("prefix") || location;
    if (!prefix) throw bad(`registry[${i}] has neither prefix nor location`);
    if (prefix.startsWith("*.") && location) {
      throw bad(`registry[${i}] has a wildcard prefix and a location`);
    }
    const byDigest = flag(
      table["mirror-by-digest-only"],
      "mirror-by-digest-only",
    );
    const mirrors = table.mirror ?? [];
    if (!Array.isArray(mirrors)) {
      throw bad(`registry[${i}].mirror is not an array of tables`);
    }
    return {
      prefix,
      location: location || prefix,
      insecure: flag(table.insecure, "insecure"),
      blocked: flag(table.blocked, "blocked"),
      mirrors: mirrors.map((mirror: Record<string, unknown>, j) => {
        const where = `registry[${i}].mirror[${j}]`;
        const location = typeof mirror.location === "string"
          ? mirror.location.trim()
          : "";
        if (!location) throw bad(`${where} has no location`);
        const pull = mirror["pull-from-mirror"] ??
          (byDigest ? "digest-only" : "all");
        if (pull !== "all" && pull !== "digest-only" && pull !== "tag-only") {
          throw bad(
            `${where}.pull-from-mirror is not all, digest-only or tag-only`,
          );
        }
        return {
          location,
          insecure: flag(mirror.insecure, `mirror[${j}].insecure`),
          pullFromMirror: pull,
        };
      }),
    };
  });
}

/**
 * The entry whose prefix matches `name` (`host[:port]/repository`) the
 * longest, as containers/image chooses it.
 *
 * @example
 * ```ts
 * import { matchRegistry } from "./registries_conf.ts";
 * matchRegistry([], "docker.io/library/alpine"); // undefined
 * ```
 */
export function matchRegistry(
  entries: readonly ConfRegistry[],
  name: string,
): ConfRegistry | undefined {
  let best: ConfRegistry | undefined;
  let bestLength = -1;
  for (const entry of entries) {
    const length = matchLength(entry.prefix, name);
    if (length > bestLength) {
      best = entry;
      bestLength = length;
    }
  }
  return best;
}

// How much of `name` `prefix` matches (-1: not at all). A prefix matches at
// a path-segment boundary; `*.domain` matches the hosts under it.
function matchLength(prefix: string, name: string): number {
  if (prefix.startsWith("*.")) {
    const host = name.split("/")[0].replace(/:\d+$/, "");
    return host.endsWith(prefix.slice(1)) ? prefix.length - 1 : -1;
  }
  if (!name.startsWith(prefix)) return -1;
  const next = name.charAt(prefix.length);
  return next === "" || next === "/" ? prefix.length : -1;
}

async function defaultPlaces(): Promise<string[]> {
  const process = await importNode<typeof import("node:process")>(
    "node:process",
  );
  const os = await importNode<typeof import("node:os")>("node:os");
  let fromEnv: string | undefined;
  let home: string | undefined;
  try {
    fromEnv = process?.env?.CONTAINERS_REGISTRIES_CONF;
    home = os?.homedir?.();
  } catch { /* no permission: the system file only */ }
  if (fromEnv) return [fromEnv];
  return [
    ...(home ? [`${home}/.config/containers/registries.conf`] : []),
    "/etc/containers/registries.conf",
  ];
}

interface Toml {
  parse(text: string): unknown;
}

function importToml(): Promise<Toml> {
  // A variable specifier: only a pull with a registries.conf loads it.
  const name: string = "smol-toml";
  return import(name);
}
