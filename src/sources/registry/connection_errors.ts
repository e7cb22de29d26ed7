/**
 * What a failed TLS or proxy connection means, read from the error each
 * runtime's `fetch` throws (Node's and Bun's OpenSSL codes, Deno's rustls
 * messages, undici's and Bun's tunnel errors), as a `DockerSaveError` with
 * its own code. These are not retried: another attempt meets the same
 * certificate or the same proxy. (The transport's `network_error.ts`
 * classifies the rest: refused, unknown host, plain HTTP.)
 *
 * @module
 */

import {
  DockerSaveError,
  type DockerSaveErrorCode,
} from "../../model/errors.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import { causes } from "./network_error.ts";
import type { FoundTls } from "./tls.ts";

/**
 * How the failed request was made.
 *
 * @example
 * ```ts
 * import type { ConnectionContext } from "./connection_errors.ts";
 * const context: ConnectionContext = { url: new URL("https://registry.lan/v2/") };
 * ```
 */
export interface ConnectionContext {
  /** The URL asked for. */
  url: URL;
  /** The proxy it went through, if any. */
  proxy?: string;
  /** The TLS material configured for its host, if any. */
  tls?: FoundTls;
}

// [code, pattern over "code message" of each error in the cause chain]
const PATTERNS: [DockerSaveErrorCode, RegExp][] = [
  [
    "PROXY_REFUSED",
    /ERR_PROXY_TUNNEL|Proxy response \(\d+\)|unsuccessful tunnel|Proxy refused/i,
  ],
  [
    "TLS_CERT_EXPIRED",
    /CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|invalid peer certificate: (Expired|NotValidYet)/i,
  ],
  [
    "TLS_HOSTNAME_MISMATCH",
    /ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match|not valid for name|NotValidForName/i,
  ],
  [
    "TLS_UNKNOWN_CA",
    /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|CERT_UNTRUSTED|UnknownIssuer|unknown ca|self[- ]signed certificate/i,
  ],
  [
    "TLS_CLIENT_CERT_REQUIRED",
    /CERTIFICATE_REQUIRED|CertificateRequired|BadCertificate|ALERT_BAD_CERTIFICATE|alert bad certificate/i,
  ],
];

// The server closed the connection before answering: with a private CA
// configured and no client certificate presented, the likeliest reason is
// that it wants one (Go's registry sends its alert after the handshake,
// where Node, Bun and Deno often see only the close).
const CLOSED =
  /other side closed|connection closed|ECONNRESET|EPROTO|socket hang up|TLS handshake failed/i;

/**
 * The `DockerSaveError` a connection failure maps to, or `undefined` for a
 * failure worth retrying (a refused or reset connection, a timeout).
 *
 * @example
 * ```ts
 * import { connectionError } from "./connection_errors.ts";
 * const error = Object.assign(new Error("certificate has expired"), {
 *   code: "CERT_HAS_EXPIRED",
 * });
 * connectionError(error, { url: new URL("https://registry.lan/v2/") })?.code;
 * // "TLS_CERT_EXPIRED"
 * ```
 */
export function connectionError(
  error: unknown,
  context: ConnectionContext,
): DockerSaveError | undefined {
  const chain = causes(error);
  const text = chain.map((e) =>
    `${typeof e.code === "string" ? e.code : ""} ${e.message}`
  ).join(
    "\n",
  );
  let code = PATTERNS.find(([, pattern]) => pattern.test(text))?.[0];
  if (
    !code && context.url.protocol === "https:" && context.tls?.ca.length &&
    context.tls.cert === undefined && CLOSED.test(text)
  ) code = "TLS_CLIENT_CERT_REQUIRED";
  if (!code) return undefined;
  const host = context.url.host;
  const detail = untrustedText(
    chain.map((e) => e.message).filter(Boolean).at(-1) ?? "",
    300,
  );
  const where = `certs.d/${host}/, --cert-dir or options.tls["${host}"]`;
  const reasons: Record<string, string> = {
    PROXY_REFUSED: `the proxy ${
      untrustedText(redact(context.proxy ?? "?"))
    } refused to open a tunnel (CONNECT) to it`,
    TLS_CERT_EXPIRED: "its certificate has expired or is not yet valid",
    TLS_HOSTNAME_MISMATCH: `its certificate is not valid for ${host}`,
    TLS_UNKNOWN_CA:
      `its certificate is signed by an unknown authority; trust the CA with a *.crt in ${where}`,
    TLS_CLIENT_CERT_REQUIRED: context.tls?.cert === undefined
      ? `it wants a client certificate; give one as client.cert and client.key in ${where}`
      : `it refused the client certificate from ${context.tls.from}`,
  };
  return new DockerSaveError(
    code,
    `Cannot connect to ${host}: ${reasons[code]}${
      detail ? ` (${detail})` : ""
    }`,
    { cause: error },
  );
}

/**
 * A proxy URL without its password, for messages.
 *
 * @example
 * ```ts
 * import { redact } from "./connection_errors.ts";
 * redact("http://me:secret@proxy:3128"); // "http://me:***@proxy:3128/"
 * ```
 */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href;
  } catch {
    return url;
  }
}
