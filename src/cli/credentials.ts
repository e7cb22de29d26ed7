/**
 * The CLI's `--creds`: `HOST=USER:PASS` (repeatable) binds credentials to a
 * registry host; a bare `USER:PASS` is taken only when the sources name one
 * registry host, so it is never sent to a registry the user did not mean.
 *
 * @module
 */

import { parseReference } from "../model/image_reference.ts";
import {
  type RegistryCredentials,
  registryKey,
} from "../sources/registry/credentials.ts";

/**
 * One `--creds` value, split: the host it names (if any) and the
 * credentials.
 *
 * @example
 * ```ts
 * import type { CredsValue } from "./credentials.ts";
 * const value: CredsValue = { host: "ghcr.io", username: "ci", password: "…" };
 * ```
 */
export interface CredsValue {
  /** `host[:port]` from `HOST=USER:PASS`; absent for `USER:PASS`. */
  host?: string;
  /** The user name. */
  username: string;
  /** The password (after the first colon; may hold colons). */
  password: string;
}

/**
 * Splits a `--creds` value: `HOST=USER:PASS` when the part before the first
 * `=` is a registry host as image references name it (`ghcr.io`,
 * `registry.example:5000`, `localhost`), else `USER:PASS`. `undefined` when
 * neither (no user, or no colon).
 *
 * @example
 * ```ts
 * import { parseCreds } from "./credentials.ts";
 * parseCreds("ghcr.io=ci:pa:ss"); // { host: "ghcr.io", username: "ci", password: "pa:ss" }
 * parseCreds("ci:pa=ss"); // { username: "ci", password: "pa=ss" }
 * ```
 */
export function parseCreds(value: string): CredsValue | undefined {
  const equals = value.indexOf("=");
  const host = equals > 0 ? value.slice(0, equals) : undefined;
  if (host !== undefined && isRegistryHost(host)) {
    const rest = splitUserPass(value.slice(equals + 1));
    return rest && { host: registryKey(host), ...rest };
  }
  return splitUserPass(value);
}

/**
 * The credentials option for the registry sources' hosts: every
 * `HOST=USER:PASS`, and a bare `USER:PASS` for the one host the sources
 * name. With a bare value and several hosts, `{ ambiguous }` lists them.
 *
 * @example
 * ```ts
 * import { credentialsForSources } from "./credentials.ts";
 * credentialsForSources([{ username: "ci", password: "…" }], ["ghcr.io/org/app:1"]);
 * // { credentials: { "ghcr.io": { username: "ci", password: "…" } } }
 * ```
 */
export function credentialsForSources(
  values: readonly CredsValue[],
  references: readonly string[],
):
  | { credentials?: Record<string, RegistryCredentials> }
  | { ambiguous: string[] } {
  if (values.length === 0) return {};
  const credentials: Record<string, RegistryCredentials> = {};
  for (const { host, username, password } of values) {
    if (host !== undefined) credentials[host] = { username, password };
  }
  const bare = values.filter((value) => value.host === undefined);
  if (bare.length) {
    const hosts = [
      ...new Set(
        references.map((reference) =>
          registryKey(parseReference(reference).registry)
        ),
      ),
    ];
    if (hosts.length > 1 || bare.length > 1) return { ambiguous: hosts };
    const [{ username, password }] = bare;
    if (hosts.length === 1) credentials[hosts[0]] ??= { username, password };
  }
  return { credentials };
}

function splitUserPass(
  text: string,
): { username: string; password: string } | undefined {
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

// A registry host as a reference names one: what parseReference takes as
// the registry part of HOST/x.
function isRegistryHost(text: string): boolean {
  try {
    return registryKey(parseReference(`${text}/x`).registry) ===
      registryKey(text);
  } catch {
    return false;
  }
}
