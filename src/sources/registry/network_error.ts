/**
 * What a failed `fetch` means, whichever runtime threw it: Node's undici
 * (`TypeError: fetch failed` with a `cause` carrying `code`), Deno's
 * (`cause.message` naming the failure in words) and Bun's (`code` on the
 * error itself). A refused connection, an unknown host, or a TLS failure
 * will not go away by retrying, so they end a request at once (as `docker
 * pull` and skopeo do); a reset or timeout is retried.
 *
 * @module
 */

import { untrustedText } from "../../util/untrusted_text.ts";

/**
 * The kind of a network failure.
 *
 * - `bad-port`: `fetch` refuses the port (the Fetch standard's "bad ports",
 *   such as 1, 25 or 6000).
 * - `refused`: nothing listens on the port (ECONNREFUSED).
 * - `dns`: the host name does not resolve (ENOTFOUND), or no resolver
 *   answered (EAI_AGAIN).
 * - `plain-http`: an HTTPS request was answered in plain HTTP, as by a
 *   registry meant to be reached with `--insecure-registry`.
 * - `tls`: another TLS failure (a certificate not trusted, expired, or for
 *   another name; a handshake refused).
 * - `other`: anything else (a reset, a timeout): worth retrying.
 *
 * @example
 * ```ts
 * import type { NetworkFailureKind } from "./network_error.ts";
 * const kind: NetworkFailureKind = "refused";
 * ```
 */
export type NetworkFailureKind =
  | "bad-port"
  | "refused"
  | "dns"
  | "plain-http"
  | "tls"
  | "other";

/**
 * A failed `fetch`, classified.
 *
 * @example
 * ```ts
 * import type { NetworkFailure } from "./network_error.ts";
 * const failure: NetworkFailure = {
 *   kind: "refused", code: "ECONNREFUSED", detail: "connect ECONNREFUSED", final: true,
 * };
 * ```
 */
export interface NetworkFailure {
  /** What went wrong. */
  kind: NetworkFailureKind;
  /** The runtime's error code (`ECONNREFUSED`), where it gave one. */
  code?: string;
  /** The innermost message the runtime gave, escaped and cut short. */
  detail: string;
  /** Retrying cannot help: the request fails at once. */
  final: boolean;
}

// TLS failures that are not a plain-HTTP answer: OpenSSL's and Node's codes.
const TLS_CODE =
  /^(?:CERT_|ERR_TLS_|ERR_SSL_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(?:VERIFY|GET_ISSUER)|HOSTNAME_MISMATCH)/;

/**
 * Classifies what a `fetch` threw by the codes and messages of its cause
 * chain (and an `AggregateError`'s errors, as for a name with several
 * addresses).
 *
 * @example
 * ```ts
 * import { classifyNetworkError } from "./network_error.ts";
 * const error = new TypeError("fetch failed", {
 *   cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5000"), {
 *     code: "ECONNREFUSED",
 *   }),
 * });
 * classifyNetworkError(error).kind; // "refused"
 * ```
 */
export function classifyNetworkError(error: unknown): NetworkFailure {
  const chain = causes(error);
  const codes = chain.map((e) => e.code).filter((c) => typeof c === "string");
  const text = chain.map((e) => e.message).join("\n");
  const innermost = chain.at(-1)?.message || String(error);
  const failure = (kind: NetworkFailureKind, code?: string) => ({
    kind,
    code: code ?? codes.at(-1),
    detail: untrustedText(innermost.trim().split("\n")[0], 200),
    final: kind !== "other",
  });
  const has = (code: string) => codes.includes(code);
  // undici says "bad port", Deno "Requests to port N are blocked".
  if (/^bad port$|requests to port \d+ are blocked/im.test(text)) {
    return failure("bad-port");
  }
  if (has("ECONNREFUSED") || /connection refused/i.test(text)) {
    return failure("refused", "ECONNREFUSED");
  }
  // A temporary failure too (EAI_AGAIN: no resolver answered): docker and
  // skopeo end there, and Deno does not tell the two apart.
  if (has("EAI_AGAIN") || /temporary failure in name resolution/i.test(text)) {
    return failure("dns", "EAI_AGAIN");
  }
  if (
    has("ENOTFOUND") ||
    /failed to lookup address|name or service not known|no such host/i
      .test(text)
  ) {
    return failure("dns", "ENOTFOUND");
  }
  // Plain HTTP where TLS was expected: OpenSSL (Node) reads "HTTP/1.1" as
  // a record of a wrong version, rustls (Deno) as a corrupt message, Bun
  // says the server may not speak TLS.
  if (
    has("ERR_SSL_WRONG_VERSION_NUMBER") ||
    /wrong version number|InvalidContentType|speak TLS on this port/i.test(
      text,
    )
  ) {
    return failure("plain-http");
  }
  if (
    codes.some((code) => TLS_CODE.test(code)) || has("EPROTO") ||
    /certificate|handshake/i.test(text)
  ) {
    return failure("tls");
  }
  return failure("other");
}

/**
 * One line for a failure of a request to `host`: what happened, the
 * runtime's code, and what to do where we know.
 *
 * @example
 * ```ts
 * import { describeNetworkFailure } from "./network_error.ts";
 * describeNetworkFailure(
 *   { kind: "refused", code: "ECONNREFUSED", detail: "", final: true },
 *   "localhost:5000",
 * ); // "localhost:5000 refused the connection (ECONNREFUSED)"
 * ```
 */
export function describeNetworkFailure(
  failure: NetworkFailure,
  host: string,
): string {
  const code = failure.code ? ` (${failure.code})` : "";
  switch (failure.kind) {
    case "bad-port":
      return `${host}: fetch refuses this port (a "bad port" of the Fetch standard)`;
    case "refused":
      return `${host} refused the connection${code}`;
    case "dns":
      return `cannot resolve the host name of ${host}${code}`;
    case "plain-http":
      // skopeo: "server gave HTTP response to HTTPS client".
      return `${host} answered HTTPS in plain HTTP${code}; if it is an HTTP registry, allow it with --insecure-registry ${host} (options.insecure)`;
    case "tls":
      return `TLS with ${host} failed${code}: ${failure.detail}`;
    default:
      return `${host}: ${failure.detail}${
        failure.detail.includes(failure.code ?? "") ? "" : code
      }`;
  }
}

/**
 * One error of a cause chain: its code and message.
 *
 * @example
 * ```ts
 * import type { Link } from "./network_error.ts";
 * const link: Link = { code: "ECONNREFUSED", message: "connect ECONNREFUSED" };
 * ```
 */
export interface Link {
  /** The runtime's code, if any (any type: it is the runtime's). */
  code?: unknown;
  /** The message. */
  message: string;
}

/**
 * The error, its causes, and an AggregateError's errors, outermost first
 * (bounded: a cause chain is the runtime's, but may be a cycle).
 *
 * @example
 * ```ts
 * import { causes } from "./network_error.ts";
 * causes(new TypeError("fetch failed", { cause: new Error("reset") })).length; // 2
 * ```
 */
export function causes(error: unknown): Link[] {
  const out: Link[] = [];
  const queue: unknown[] = [error];
  while (queue.length > 0 && out.length < 16) {
    const next = queue.shift();
    if (next === null || typeof next !== "object") {
      if (next !== undefined) out.push({ message: String(next) });
      continue;
    }
    const e = next as {
      code?: unknown;
      message?: unknown;
      cause?: unknown;
      errors?: unknown;
    };
    out.push({ code: e.code, message: String(e.message ?? "") });
    if (e.cause !== undefined && e.cause !== next) queue.push(e.cause);
    if (Array.isArray(e.errors)) queue.push(...e.errors.slice(0, 4));
  }
  return out;
}
