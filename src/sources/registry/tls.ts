/**
 * Which CA certificates and client certificate a registry host is spoken to
 * with, found as docker and the containers tools find them: the `tls`
 * option, a `--cert-dir`, else a `certs.d/HOST[:PORT]` directory (`*.crt`
 * are CAs, `*.cert` + `*.key` a client certificate). A host found here is
 * spoken to over HTTPS, a loopback one too (docker does the same when
 * `certs.d/HOST` exists).
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { importNode } from "../../runtime/_import.ts";
import { isNotFound } from "../../runtime/fs.ts";

/**
 * The TLS material of one registry host, as PEM text.
 *
 * @example
 * ```ts
 * import type { RegistryTls } from "./tls.ts";
 * const tls: RegistryTls = {
 *   ca: "-----BEGIN CERTIFICATE-----\n…",
 *   cert: "-----BEGIN CERTIFICATE-----\n…",
 *   key: "-----BEGIN PRIVATE KEY-----\n…",
 * };
 * ```
 */
export interface RegistryTls {
  /** CA certificates trusted for this host besides the system's. */
  ca?: string | readonly string[];
  /** A client certificate, presented with `key` (mutual TLS). */
  cert?: string;
  /** The client certificate's private key. */
  key?: string;
}

/**
 * TLS material keyed by registry host as image references name it
 * (`registry.lan:5000`, `127.0.0.1:5443`).
 *
 * @example
 * ```ts
 * import type { RegistryTlsOption } from "./tls.ts";
 * const tls: RegistryTlsOption = { "registry.lan:5000": { ca: "…" } };
 * ```
 */
export type RegistryTlsOption = Readonly<Record<string, RegistryTls>>;

/**
 * Where `findRegistryTls` looks.
 *
 * @example
 * ```ts
 * import type { TlsLookup } from "./tls.ts";
 * const lookup: TlsLookup = { certDir: "./certs" };
 * ```
 */
export interface TlsLookup {
  /** Per-host material, looked at first. */
  tls?: RegistryTlsOption;
  /** One directory of `*.crt`, `*.cert`, `*.key` for every host (skopeo's `--cert-dir`). */
  certDir?: string;
  /**
   * `certs.d` directories holding a `HOST[:PORT]` directory each; the first
   * with one for the host is used; `false` reads none.
   * @default {["~/.config/containers/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d"]}
   */
  certsDirectories?: readonly string[] | false;
}

/**
 * The TLS material found for a host, and where.
 *
 * @example
 * ```ts
 * import type { FoundTls } from "./tls.ts";
 * const found: FoundTls = { ca: [], from: "/etc/docker/certs.d/registry.lan" };
 * ```
 */
export interface FoundTls {
  /** PEM CA certificates (maybe none: the system's roots then). */
  ca: string[];
  /** PEM client certificate. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** Where it came from, for messages. */
  from: string;
}

/**
 * The TLS material for `host` (`host[:port]`), or `undefined` when none is
 * configured. Throws `DockerSaveError` `BAD_TLS_CONFIG` for a client
 * certificate without its key (or the reverse), or a file that cannot be
 * read.
 *
 * @example
 * ```ts
 * import { findRegistryTls } from "./tls.ts";
 * const found = await findRegistryTls("registry.lan:5000", {});
 * console.log(found?.from); // e.g. "/etc/docker/certs.d/registry.lan:5000"
 * ```
 */
export async function findRegistryTls(
  host: string,
  lookup: TlsLookup,
): Promise<FoundTls | undefined> {
  const key = host.toLowerCase();
  const given = Object.entries(lookup.tls ?? {}).find(([name]) =>
    name.toLowerCase() === key
  )?.[1];
  if (given) return fromOption(host, given);
  if (lookup.certDir !== undefined) {
    return await fromDirectory(lookup.certDir, true);
  }
  if (lookup.certsDirectories === false) return undefined;
  for (
    const root of lookup.certsDirectories ?? await defaultCertsDirectories()
  ) {
    const found = await fromDirectory(`${root}/${host}`, false);
    if (found) return found;
  }
  return undefined;
}

function fromOption(host: string, given: RegistryTls): FoundTls {
  const from = `options.tls["${host}"]`;
  if ((given.cert === undefined) !== (given.key === undefined)) {
    throw new DockerSaveError(
      "BAD_TLS_CONFIG",
      `Cannot use the client certificate of ${from}: it needs both cert and key`,
    );
  }
  const ca = given.ca === undefined
    ? []
    : typeof given.ca === "string"
    ? [given.ca]
    : [...given.ca];
  return { ca, cert: given.cert, key: given.key, from };
}

// A directory's *.crt (CAs) and first *.cert with its *.key, as
// docker's `ReadCertsDirectory` reads them; `undefined` when it is absent
// (an error when it was named outright).
async function fromDirectory(
  dir: string,
  named: boolean,
): Promise<FoundTls | undefined> {
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  if (!fs) return undefined;
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort();
  } catch (error) {
    if (isNotFound(error) && !named) return undefined;
    throw new DockerSaveError(
      "BAD_TLS_CONFIG",
      `Cannot read certificate directory "${dir}": ${
        (error as Error)?.message ?? error
      }`,
      { cause: error },
    );
  }
  const read = async (name: string) => {
    try {
      return await fs.readFile(`${dir}/${name}`, "utf8");
    } catch (error) {
      throw new DockerSaveError(
        "BAD_TLS_CONFIG",
        `Cannot read "${dir}/${name}": ${(error as Error)?.message ?? error}`,
        { cause: error },
      );
    }
  };
  const found: FoundTls = { ca: [], from: dir };
  for (const name of names) {
    if (name.endsWith(".crt")) found.ca.push(await read(name));
  }
  for (const name of names) {
    const base = name.replace(/\.(cert|key)$/, "");
    if (base === name) continue;
    const pair = name.endsWith(".cert") ? `${base}.key` : `${base}.cert`;
    if (!names.includes(pair)) {
      throw new DockerSaveError(
        "BAD_TLS_CONFIG",
        `Cannot use the client certificate in "${dir}": ${name} has no ${pair} beside it`,
      );
    }
    if (name.endsWith(".cert") && found.cert === undefined) {
      found.cert = await read(name);
      found.key = await read(pair);
    }
  }
  return found;
}

async function defaultCertsDirectories(): Promise<string[]> {
  const os = await importNode<typeof import("node:os")>("node:os");
  let home: string | undefined;
  try {
    home = os?.homedir?.();
  } catch { /* no home: only the system directories */ }
  return [
    ...(home ? [`${home}/.config/containers/certs.d`] : []),
    "/etc/containers/certs.d",
    "/etc/docker/certs.d",
  ];
}
