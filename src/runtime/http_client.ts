/**
 * A `fetch` that trusts extra CAs, presents a client certificate and goes
 * through a chosen proxy (or none), by each runtime's own means: Deno's
 * `Deno.createHttpClient`, Bun's `fetch(url, { tls, proxy })`, and on Node
 * `node:http`/`node:https` (`node_http_fetch.ts`, which also carries the
 * requests that need none of these: it holds less memory per body than
 * Node's `fetch`), with an `undici` `ProxyAgent` from the npm package for a
 * proxy, imported only when asked for (the core stays runtime-neutral).
 * `httpClientKind()` is the one place that asks which of these the runtime
 * has.
 *
 * @module
 */

import { importNode } from "./_import.ts";
import { nodeHttpFetch } from "./node_http_fetch.ts";

/**
 * What one HTTP client does beyond plain `fetch`.
 *
 * @example
 * ```ts
 * import type { HttpClientOptions } from "./http_client.ts";
 * const options: HttpClientOptions = {
 *   ca: ["-----BEGIN CERTIFICATE-----\n…"],
 *   proxy: "http://proxy.example:3128",
 * };
 * ```
 */
export interface HttpClientOptions {
  /** PEM CA certificates trusted besides the system's. */
  ca?: readonly string[];
  /** A PEM client certificate, presented with `key`. */
  cert?: string;
  /** The client certificate's PEM private key. */
  key?: string;
  /**
   * The proxy URL (`http://host:port`) every request goes through;
   * `undefined` connects directly, whatever the environment says.
   */
  proxy?: string;
}

/**
 * How the runtime makes such a client: `"deno"` (`Deno.createHttpClient`),
 * `"bun"` (`fetch` takes `tls` and `proxy`), `"node"` (`node:http` and
 * `node:https`; a proxy through the `undici` npm package), or `undefined`
 * (none: edge runtimes, browsers).
 *
 * @example
 * ```ts
 * import type { HttpClientKind } from "./http_client.ts";
 * const kind: HttpClientKind = "node";
 * ```
 */
export type HttpClientKind = "deno" | "bun" | "node";

interface DenoHttpApi {
  createHttpClient(options: {
    caCerts?: string[];
    cert?: string;
    key?: string;
    proxy?: { url: string };
  }): { close(): void };
  env: { get(name: string): string | undefined; delete(name: string): void };
}

// Deno's client reads the *_PROXY variables when it is created; these are
// hidden for that moment so that our choice (proxy or none) is the one made.
const PROXY_VARIABLES = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
];

let kind: Promise<HttpClientKind | undefined> | undefined;

/**
 * Which native client the runtime has, probed once: a `createHttpClient`
 * on `Deno`, Bun's `fetch` (its `tls`/`proxy` init fields cannot be
 * probed, so `Bun` is asked for), else Node's `node:http` where Node runs
 * (Deno's and Bun's `node:http` are built over their `fetch`: no gain;
 * edge runtimes' `nodejs_compat` ones are left alone too).
 *
 * @example
 * ```ts
 * import { httpClientKind } from "./http_client.ts";
 * console.log(await httpClientKind()); // "deno", "bun", "node" or undefined
 * ```
 */
export function httpClientKind(): Promise<HttpClientKind | undefined> {
  kind ??= (async () => {
    const runtime = globalThis as {
      Deno?: Partial<DenoHttpApi>;
      Bun?: { version?: unknown };
      navigator?: { userAgent?: unknown };
    };
    if (typeof runtime.Deno?.createHttpClient === "function") return "deno";
    if (typeof runtime.Bun?.version === "string") return "bun";
    if (runtime.Deno) return undefined; // a Deno without createHttpClient
    const process = await importNode<typeof import("node:process")>(
      "node:process",
    );
    const isNode = process?.release?.name === "node" &&
      runtime.navigator?.userAgent !== "Cloudflare-Workers";
    return isNode && await importNode("node:http") ? "node" : undefined;
  })();
  return kind;
}

/**
 * The `fetch` for requests that need no CA, client certificate or proxy:
 * on Node one over `node:http` (less memory per body than Node's `fetch`;
 * each call makes its own keep-alive agents, so call it once per pull),
 * elsewhere the runtime's `fetch`.
 *
 * @example
 * ```ts
 * import { plainHttpFetch } from "./http_client.ts";
 * const send = await plainHttpFetch();
 * const response = await send("https://ghcr.io/v2/");
 * ```
 */
export async function plainHttpFetch(): Promise<typeof fetch> {
  const made = await httpClientKind() === "node"
    ? await nodeHttpFetch({})
    : undefined;
  return made ?? ((input, init) => fetch(input, init));
}

/**
 * A `fetch` with `options` applied, or `undefined` where the runtime has
 * no way to (see `httpClientKind`).
 *
 * @example Trust a private CA
 * ```ts
 * import { createHttpFetch } from "./http_client.ts";
 * const ca = await Deno.readTextFile("/etc/docker/certs.d/registry.lan/ca.crt");
 * const fetchWithCa = await createHttpFetch({ ca: [ca] });
 * await fetchWithCa?.("https://registry.lan/v2/");
 * ```
 */
export async function createHttpFetch(
  options: HttpClientOptions,
): Promise<typeof fetch | undefined> {
  switch (await httpClientKind()) {
    case "deno":
      return denoFetch(options, await sslCertFileCas());
    case "bun":
      return await bunFetch(options);
    case "node":
      return options.proxy
        ? await undiciFetch(options)
        : await nodeHttpFetch(await nodeTlsOptions(options));
    default:
      return undefined;
  }
}

function denoFetch(
  options: HttpClientOptions,
  environment: string[],
): typeof fetch {
  const deno = (globalThis as unknown as { Deno: DenoHttpApi }).Deno;
  const hidden = new Map<string, string>();
  let client: { close(): void };
  try {
    for (const name of PROXY_VARIABLES) {
      try {
        const value = deno.env.get(name);
        if (value !== undefined) {
          hidden.set(name, value);
          deno.env.delete(name);
        }
      } catch { /* no env permission: Deno reads none either */ }
    }
    // Deno reads DENO_CERT itself, but not SSL_CERT_FILE.
    const caCerts = [...environment, ...options.ca ?? []];
    client = deno.createHttpClient({
      caCerts: caCerts.length ? caCerts : undefined,
      cert: options.cert,
      key: options.key,
      proxy: options.proxy ? { url: options.proxy } : undefined,
    });
  } finally {
    const env = deno.env as unknown as {
      set(name: string, value: string): void;
    };
    for (const [name, value] of hidden) env.set(name, value);
  }
  return (input, init) =>
    fetch(input, { ...init, client } as RequestInit & { client: unknown });
}

async function bunFetch(options: HttpClientOptions): Promise<typeof fetch> {
  // Bun's `tls.ca` replaces the system roots: they are added back.
  const tls = await nodeTlsOptions(options);
  return (input, init) =>
    fetch(input, {
      ...init,
      tls,
      // An empty string turns Bun's own *_PROXY reading off.
      proxy: options.proxy ?? "",
    } as unknown as RequestInit);
}

// Node through a proxy: undici tunnels (CONNECT) for `https:` targets.
async function undiciFetch(
  options: HttpClientOptions,
): Promise<typeof fetch | undefined> {
  const undici = await importUndici();
  if (!undici) return undefined;
  const tls = await nodeTlsOptions(options);
  const dispatcher = new undici.ProxyAgent({
    uri: options.proxy!,
    requestTls: tls,
  });
  return ((input: string | URL | Request, init?: RequestInit) =>
    undici.fetch(
      input as string,
      { ...init, dispatcher } as Parameters<typeof undici.fetch>[1],
    )) as unknown as typeof fetch;
}

// `ca` for node:tls (Bun, undici): the bundled roots, the files
// NODE_EXTRA_CA_CERTS and SSL_CERT_FILE name, and ours, since `ca` replaces
// the roots there (Deno's `caCerts` adds to them, DENO_CERT included).
// Node reads SSL_CERT_FILE only with --use-openssl-ca: it is added here.
async function nodeTlsOptions(
  options: HttpClientOptions,
): Promise<{ ca?: string[]; cert?: string; key?: string }> {
  let ca: string[] | undefined;
  if (options.ca?.length || (await sslCertFileCas()).length) {
    const tls = await importNode<typeof import("node:tls")>("node:tls");
    ca = [...(tls?.rootCertificates ?? []), ...await environmentCas()];
    ca.push(...options.ca ?? []);
  }
  return { ca, cert: options.cert, key: options.key };
}

async function environmentCas(): Promise<string[]> {
  return [
    ...await environmentFile("NODE_EXTRA_CA_CERTS"),
    ...await sslCertFileCas(),
  ];
}

let sslCertFile: Promise<string[]> | undefined;

/**
 * The PEM bundle `SSL_CERT_FILE` names (OpenSSL's and Go's variable), read
 * once: `[]` when unset or unreadable. Node and Deno do not read it
 * themselves, so any HTTPS request made while it is set goes through a
 * client that trusts it (besides the system roots).
 *
 * @example
 * ```ts
 * import { sslCertFileCas } from "./http_client.ts";
 * const bundle = await sslCertFileCas(); // [] or [the file's PEM text]
 * ```
 */
export function sslCertFileCas(): Promise<string[]> {
  sslCertFile ??= environmentFile("SSL_CERT_FILE");
  return sslCertFile;
}

async function environmentFile(name: string): Promise<string[]> {
  const process = await importNode<typeof import("node:process")>(
    "node:process",
  );
  const fs = await importNode<typeof import("node:fs/promises")>(
    "node:fs/promises",
  );
  try {
    const path = process?.env?.[name];
    if (path && fs) return [await fs.readFile(path, "utf8")];
  } catch { /* no permission, or unreadable: the runtime says so itself */ }
  return [];
}

type Undici = typeof import("undici");
let undiciModule: Promise<Undici | undefined> | undefined;

function importUndici(): Promise<Undici | undefined> {
  // A variable specifier keeps bundlers for edge runtimes from pulling it in.
  const name: string = "undici";
  undiciModule ??= import(name).catch(() => undefined);
  return undiciModule;
}
