/**
 * The `fetch` registry requests go through: per request URL, the TLS
 * material configured for its host (`tls.ts`) and the proxy chosen for it
 * (`proxy.ts`), applied by the runtime's own HTTP client
 * (`runtime/http_client.ts`); a failed TLS or proxy connection becomes a
 * typed error at once (`connection_errors.ts`). Without any of these, the
 * runtime's plain `fetch` is used, except on Node, where every request
 * without a proxy goes over `node:http` (less memory per body; see
 * `runtime/node_http_fetch.ts`).
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { importNode } from "../../runtime/_import.ts";
import {
  createHttpFetch,
  plainHttpFetch,
  sslCertFileCas,
} from "../../runtime/http_client.ts";
import { connectionError, redact } from "./connection_errors.ts";
import { PROXY_ENV, proxyFor, type ProxySettings } from "./proxy.ts";
import { findRegistryTls, type FoundTls, type TlsLookup } from "./tls.ts";

/**
 * How registries are reached on the network.
 *
 * @example
 * ```ts
 * import type { NetworkOptions } from "./network.ts";
 * const options: NetworkOptions = {
 *   certDir: "./certs",
 *   proxy: "http://proxy.lan:3128",
 * };
 * ```
 */
export interface NetworkOptions extends TlsLookup {
  /** The proxy for every request, `false` for none (else the environment's). */
  proxy?: string | false;
  /** A `fetch` of the caller's: used as is, for every request. */
  fetch?: typeof fetch;
}

/**
 * One pull's network: TLS lookups and HTTP clients, each made once.
 *
 * @example
 * ```ts
 * import { RegistryNetwork } from "./network.ts";
 * const network = await RegistryNetwork.create({});
 * const secure = await network.hasTls("registry.lan:5000");
 * const response = await network.fetch("https://registry.lan:5000/v2/");
 * ```
 */
export class RegistryNetwork {
  #options: NetworkOptions;
  #proxy: ProxySettings;
  #tls = new Map<string, Promise<FoundTls | undefined>>();
  #clients = new Map<string, Promise<typeof fetch | undefined>>();
  #plain: Promise<typeof fetch> | undefined;

  /**
   * Reads the proxy variables once and returns the network.
   *
   * @param options certificates, proxy, a caller's `fetch`
   */
  static async create(options: NetworkOptions): Promise<RegistryNetwork> {
    const process = await importNode<typeof import("node:process")>(
      "node:process",
    );
    const env: Record<string, string | undefined> = {};
    for (const name of PROXY_ENV) {
      try {
        env[name] = process?.env?.[name];
      } catch { /* no permission to read it: unset */ }
    }
    return new RegistryNetwork(options, { proxy: options.proxy, env });
  }

  /**
   * Prefer `RegistryNetwork.create`, which reads the environment.
   *
   * @param options certificates, a caller's `fetch`
   * @param proxy the proxy settings
   */
  constructor(options: NetworkOptions, proxy: ProxySettings) {
    this.#options = options;
    this.#proxy = proxy;
  }

  /** The TLS material configured for `host`, looked up once. */
  tlsFor(host: string): Promise<FoundTls | undefined> {
    const key = host.toLowerCase();
    let found = this.#tls.get(key);
    if (!found) {
      found = findRegistryTls(host, this.#options);
      this.#tls.set(key, found);
    }
    return found;
  }

  /** Whether TLS material is configured for `host` (then it is HTTPS). */
  async hasTls(host: string): Promise<boolean> {
    return (await this.tlsFor(host)) !== undefined;
  }

  /** `fetch`, with the host's certificates and the URL's proxy. */
  fetch: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const tls = url.protocol === "https:"
      ? await this.tlsFor(url.host)
      : undefined;
    const proxy = this.#options.fetch ? undefined : proxyFor(url, this.#proxy);
    const send = await this.#client(url, tls, proxy);
    try {
      return await send(input, init);
    } catch (error) {
      throw connectionError(error, { url, proxy, tls }) ?? error;
    }
  };

  async #client(
    url: URL,
    tls: FoundTls | undefined,
    proxy: string | undefined,
  ): Promise<typeof fetch> {
    if (this.#options.fetch) return this.#options.fetch;
    const envProxies = Object.values(this.#proxy.env).some(Boolean);
    const envCa = url.protocol === "https:" &&
      (await sslCertFileCas()).length > 0;
    if (!tls && !proxy && !envProxies && !envCa) {
      return await (this.#plain ??= plainHttpFetch());
    }
    const key = `${tls ? url.host.toLowerCase() : ""} ${proxy ?? ""}`;
    let client = this.#clients.get(key);
    if (!client) {
      client = createHttpFetch({
        ca: tls?.ca,
        cert: tls?.cert,
        key: tls?.key,
        proxy,
      });
      this.#clients.set(key, client);
    }
    const made = await client;
    if (made) return made;
    if (!tls && !proxy) return await (this.#plain ??= plainHttpFetch());
    throw new DockerSaveError(
      tls ? "BAD_TLS_CONFIG" : "BAD_URL",
      `Cannot connect to ${url.host} ${
        tls
          ? `with the certificates of ${tls.from}`
          : `through ${redact(proxy!)}`
      }: this runtime's fetch takes no CA, client certificate or proxy (on Node, the undici package gives it a proxy; else pass options.fetch)`,
    );
  }
}
