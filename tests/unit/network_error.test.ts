import { test } from "node:test";
import assert from "node:assert/strict";
import {
  classifyNetworkError,
  describeNetworkFailure,
} from "../../src/sources/registry/network_error.ts";

// What each runtime's fetch threw, as seen on Node 20 (undici), Deno 2 and
// Bun 1.4 against a closed port, a .invalid host, and HTTPS to a plain-HTTP
// server.
const coded = (message: string, code?: string) =>
  Object.assign(new Error(message), { code });
const node = (cause: Error) => new TypeError("fetch failed", { cause });
const deno = (what: string) =>
  new TypeError("fetch failed", {
    cause: new Error(
      `error sending request for url (https://h/v2/): client error (Connect): ${what}`,
    ),
  });
const bun = (message: string, code: string) =>
  Object.assign(new TypeError(message), { code });

test("classifyNetworkError() reads Node's, Deno's and Bun's fetch errors alike", () => {
  const cases: [unknown, string, string | undefined][] = [
    [
      node(coded("connect ECONNREFUSED 127.0.0.1:5", "ECONNREFUSED")),
      "refused",
      "ECONNREFUSED",
    ],
    [
      deno("tcp connect error: Connection refused (os error 111)"),
      "refused",
      "ECONNREFUSED",
    ],
    [
      bun("ECONNREFUSED: Unable to connect.", "ECONNREFUSED"),
      "refused",
      "ECONNREFUSED",
    ],
    // A name with two addresses: undici's AggregateError.
    [
      node(
        Object.assign(
          new AggregateError([
            coded("connect ECONNREFUSED ::1:5", "ECONNREFUSED"),
          ], ""),
          { code: "ECONNREFUSED" },
        ),
      ),
      "refused",
      "ECONNREFUSED",
    ],
    [
      node(coded("getaddrinfo ENOTFOUND x.invalid", "ENOTFOUND")),
      "dns",
      "ENOTFOUND",
    ],
    [
      deno(
        "dns error: failed to lookup address information: Name or service not known",
      ),
      "dns",
      "ENOTFOUND",
    ],
    [bun("getaddrinfo ENOTFOUND x.invalid", "ENOTFOUND"), "dns", "ENOTFOUND"],
    [
      node(
        coded(
          "ssl3_get_record:wrong version number",
          "ERR_SSL_WRONG_VERSION_NUMBER",
        ),
      ),
      "plain-http",
      "ERR_SSL_WRONG_VERSION_NUMBER",
    ],
    [
      deno("received corrupt message of type InvalidContentType"),
      "plain-http",
      undefined,
    ],
    [
      bun(
        "EPROTO: The TLS handshake failed. Does the server speak TLS on this port?",
        "EPROTO",
      ),
      "plain-http",
      "EPROTO",
    ],
    [
      node(coded("self-signed certificate", "DEPTH_ZERO_SELF_SIGNED_CERT")),
      "tls",
      "DEPTH_ZERO_SELF_SIGNED_CERT",
    ],
    [deno("invalid peer certificate: UnknownIssuer"), "tls", undefined],
    [node(coded("bad port")), "bad-port", undefined],
    [
      new TypeError("Fetch failed: Requests to port 1 are blocked"),
      "bad-port",
      undefined,
    ],
    // Worth retrying.
    [node(coded("read ECONNRESET", "ECONNRESET")), "other", "ECONNRESET"],
    [node(coded("getaddrinfo EAI_AGAIN x", "EAI_AGAIN")), "dns", "EAI_AGAIN"],
    [
      deno(
        "dns error: failed to lookup address information: Temporary failure in name resolution",
      ),
      "dns",
      "EAI_AGAIN",
    ],
    [new TypeError("fetch failed"), "other", undefined],
  ];
  for (const [error, kind, code] of cases) {
    const failure = classifyNetworkError(error);
    assert.deepEqual(
      [failure.kind, failure.code, failure.final],
      [kind, code, kind !== "other"],
      String((error as Error).cause ?? error),
    );
  }
});

test("describeNetworkFailure() names the cause and, for plain HTTP, --insecure-registry HOST", () => {
  const failure = classifyNetworkError(
    node(coded("wrong version number", "ERR_SSL_WRONG_VERSION_NUMBER")),
  );
  assert.equal(
    describeNetworkFailure(failure, "registry.lan:5000"),
    "registry.lan:5000 answered HTTPS in plain HTTP (ERR_SSL_WRONG_VERSION_NUMBER); if it is an HTTP registry, allow it with --insecure-registry registry.lan:5000 (options.insecure)",
  );
  // A runtime's message is escaped: it may quote a URL a redirect named.
  const hostile = classifyNetworkError(
    node(coded("certificate for \x1b[2Kevil", "CERT_HAS_EXPIRED")),
  );
  assert.equal(
    describeNetworkFailure(hostile, "h"),
    "TLS with h failed (CERT_HAS_EXPIRED): certificate for \\x1b[2Kevil",
  );
});
