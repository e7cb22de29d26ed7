/**
 * Which proxy a registry request goes through, decided here the same way on
 * every runtime (Node's `fetch` reads no proxy variables, Deno's and Bun's
 * read them each their own way): the `proxy` option (`--proxy`), else
 * `HTTPS_PROXY` for `https:` URLs and `HTTP_PROXY` for `http:` ones (upper
 * case first, then lower, as Go reads them); `NO_PROXY` (`no_proxy`) names
 * the hosts reached directly. Loopback hosts are proxied too unless
 * `NO_PROXY` names them (as curl, Deno, Bun and undici do; Go never
 * proxies them).
 *
 * @module
 */

import { DockerSaveError } from "../../model/errors.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import { redact } from "./connection_errors.ts";

/**
 * Proxy settings: the variables as the environment has them, and the
 * option that overrides them.
 *
 * @example
 * ```ts
 * import type { ProxySettings } from "./proxy.ts";
 * const settings: ProxySettings = {
 *   proxy: "http://proxy.lan:3128",
 *   env: { NO_PROXY: "registry.lan,10.0.0.0/8" },
 * };
 * ```
 */
export interface ProxySettings {
  /**
   * The proxy for every request (`--proxy`), `false` for none; the
   * environment's when `undefined`. `NO_PROXY` applies to it too.
   */
  proxy?: string | false;
  /** `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` and their lower case. */
  env: Readonly<Record<string, string | undefined>>;
}

/** The variables read, upper case first. */
export const PROXY_ENV: readonly string[] = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
];

/**
 * The proxy URL for `url`, or `undefined` to connect directly. Throws
 * `DockerSaveError` `BAD_URL` for a proxy that is not an `http:` URL.
 *
 * @example
 * ```ts
 * import { proxyFor } from "./proxy.ts";
 * const env = { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: ".lan" };
 * proxyFor(new URL("https://ghcr.io/v2/"), { env }); // "http://proxy:3128/"
 * proxyFor(new URL("https://registry.lan/v2/"), { env }); // undefined
 * ```
 */
export function proxyFor(
  url: URL,
  settings: ProxySettings,
): string | undefined {
  const { env } = settings;
  const either = (name: string) =>
    env[name] || env[name.toLowerCase()] || undefined;
  const proxy = settings.proxy === false ? undefined : settings.proxy ||
    either(url.protocol === "https:" ? "HTTPS_PROXY" : "HTTP_PROXY");
  if (!proxy || bypasses(url, either("NO_PROXY") ?? "")) return undefined;
  return checkProxy(proxy);
}

/**
 * A proxy URL as given (`host:port` gets `http://`), checked.
 *
 * @example
 * ```ts
 * import { checkProxy } from "./proxy.ts";
 * checkProxy("proxy.lan:3128"); // "http://proxy.lan:3128/"
 * ```
 */
export function checkProxy(proxy: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(
      /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`,
    );
  } catch { /* below */ }
  if (parsed?.protocol !== "http:") {
    throw new DockerSaveError(
      "BAD_URL",
      `Cannot use proxy ${
        untrustedText(JSON.stringify(redact(proxy)))
      }: only http:// proxies are supported`,
    );
  }
  return parsed.href;
}

// NO_PROXY as Go's httpproxy reads it: `*`; entries separated by commas or
// spaces; `host` (and its subdomains), `.host` (subdomains only),
// `host:port`, an IP, an IP range in CIDR.
function bypasses(url: URL, noProxy: string): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  for (let entry of noProxy.toLowerCase().split(/[\s,]+/)) {
    if (!entry) continue;
    if (entry === "*") return true;
    if (entry.includes("/")) {
      if (inCidr(host, entry)) return true;
      continue;
    }
    let entryPort: string | undefined;
    const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort) [, entry, entryPort] = withPort;
    entry = entry.replace(/^\[|\]$/g, "");
    if (entryPort && entryPort !== port) continue;
    if (entry.startsWith(".")) {
      if (host.endsWith(entry)) return true;
    } else if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function inCidr(host: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const address = ipBytes(host);
  const network = ipBytes(base);
  const bits = Number(bitsText);
  if (
    !address || !network || address.length !== network.length ||
    !Number.isInteger(bits) || bits < 0 || bits > address.length * 8
  ) return false;
  for (let bit = 0; bit < bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((address[bit >> 3] & mask) !== (network[bit >> 3] & mask)) {
      return false;
    }
  }
  return true;
}

// The bytes of an IPv4 or IPv6 address, or undefined for a name.
function ipBytes(text: string): number[] | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    return bytes.every((b) => b <= 255) ? bytes : undefined;
  }
  if (!text.includes(":")) return undefined;
  try {
    // The URL parser expands an IPv6 address to its canonical form.
    const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
    const [head, tail = ""] = canonical.split("::");
    const left = head ? head.split(":") : [];
    const right = tail ? tail.split(":") : [];
    const groups = canonical.includes("::")
      ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right]
      : left;
    return groups.flatMap((group) => {
      const value = parseInt(group, 16);
      return [value >> 8, value & 0xff];
    });
  } catch {
    return undefined;
  }
}
