/**
 * Where a registry host's certificates are found (`findRegistryTls`): the
 * `tls` option, then `certDir`, then the first `certs.d/HOST` directory;
 * a client certificate without its key is refused. And what each runtime's
 * TLS and proxy failures (as Node's undici, Bun and Deno throw them, copied
 * from real runs) map to (`connectionError`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DockerSaveError } from "../../src/model/errors.ts";
import { findRegistryTls } from "../../src/sources/registry/tls.ts";
import { connectionError } from "../../src/sources/registry/connection_errors.ts";
import { Cleanup, tempDir } from "../_kit/cleanup.ts";

async function files(dir: string, contents: Record<string, string>) {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(contents)) {
    await writeFile(join(dir, name), text);
  }
}

test("findRegistryTls() looks at the tls option, then certDir, then the first certs.d/HOST", async () => {
  const cleanup = new Cleanup();
  try {
    const root = await tempDir(cleanup, "certs");
    const first = join(root, "first");
    const second = join(root, "second");
    await files(join(first, "reg.lan:5000"), {
      "b.crt": "CA-B",
      "a.crt": "CA-A",
      "client.cert": "CERT",
      "client.key": "KEY",
      "notes.txt": "ignored",
    });
    await files(join(second, "reg.lan:5000"), { "ca.crt": "OTHER" });
    await files(join(second, "empty.lan"), {});
    const lookup = { certsDirectories: [join(root, "none"), first, second] };
    assert.deepEqual(await findRegistryTls("reg.lan:5000", lookup), {
      ca: ["CA-A", "CA-B"],
      cert: "CERT",
      key: "KEY",
      from: join(first, "reg.lan:5000"),
    });
    // An empty directory still means HTTPS (with the system's CAs).
    assert.deepEqual(await findRegistryTls("empty.lan", lookup), {
      ca: [],
      from: join(second, "empty.lan"),
    });
    assert.equal(await findRegistryTls("other.lan", lookup), undefined);
    assert.equal(
      await findRegistryTls("reg.lan:5000", { certsDirectories: false }),
      undefined,
    );
    // certDir replaces the certs.d directories; the option comes first.
    const certDir = join(root, "dir");
    await files(certDir, { "x.crt": "CA-X" });
    assert.deepEqual(
      (await findRegistryTls("reg.lan:5000", { ...lookup, certDir }))?.ca,
      ["CA-X"],
    );
    assert.deepEqual(
      await findRegistryTls("REG.lan:5000", {
        ...lookup,
        certDir,
        tls: { "reg.lan:5000": { ca: "CA-O" } },
      }),
      {
        ca: ["CA-O"],
        cert: undefined,
        key: undefined,
        from: 'options.tls["REG.lan:5000"]',
      },
    );
  } finally {
    await cleanup.close();
  }
});

test("findRegistryTls() refuses a client certificate without its key, and a certDir that is missing", async () => {
  const cleanup = new Cleanup();
  try {
    const root = await tempDir(cleanup, "certs");
    await files(join(root, "reg.lan"), { "client.cert": "CERT" });
    const refused = (e: unknown) =>
      e instanceof DockerSaveError && e.code === "BAD_TLS_CONFIG";
    await assert.rejects(
      findRegistryTls("reg.lan", { certsDirectories: [root] }),
      (e: unknown) => refused(e) && /client\.key/.test((e as Error).message),
    );
    await assert.rejects(
      findRegistryTls("reg.lan", { certDir: join(root, "missing") }),
      refused,
    );
    await assert.rejects(
      findRegistryTls("reg.lan", { tls: { "reg.lan": { cert: "CERT" } } }),
      refused,
    );
  } finally {
    await cleanup.close();
  }
});

test("connectionError() maps each runtime's TLS and proxy failures to their codes, and leaves others to the retries", () => {
  const url = new URL("https://127.0.0.1:5443/v2/");
  const node = (code: string, message: string) =>
    new TypeError("fetch failed", {
      cause: Object.assign(new Error(message), { code }),
    });
  const deno = (message: string) =>
    new TypeError("fetch failed", {
      cause: new Error(
        `error sending request for url (${url}): client error (Connect): ${message}`,
      ),
    });
  const bun = (code: string, message: string) =>
    Object.assign(new TypeError(message), { code });
  const cases: [unknown, string][] = [
    [
      node(
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        "unable to verify the first certificate",
      ),
      "TLS_UNKNOWN_CA",
    ],
    [deno("invalid peer certificate: UnknownIssuer"), "TLS_UNKNOWN_CA"],
    [
      bun(
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        "unable to verify the first certificate",
      ),
      "TLS_UNKNOWN_CA",
    ],
    [node("CERT_HAS_EXPIRED", "certificate has expired"), "TLS_CERT_EXPIRED"],
    [deno("invalid peer certificate: Expired"), "TLS_CERT_EXPIRED"],
    [
      node(
        "ERR_TLS_CERT_ALTNAME_INVALID",
        "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
      ),
      "TLS_HOSTNAME_MISMATCH",
    ],
    [
      deno(
        'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is only valid for DnsName("other.example")',
      ),
      "TLS_HOSTNAME_MISMATCH",
    ],
    [deno("received fatal alert: BadCertificate"), "TLS_CLIENT_CERT_REQUIRED"],
    [
      new TypeError("fetch failed", {
        cause: new Error("Request was cancelled.", {
          cause: Object.assign(
            new Error("Proxy response (403) !== 200 when HTTP Tunneling"),
            { code: "UND_ERR_ABORTED" },
          ),
        }),
      }),
      "PROXY_REFUSED",
    ],
    [deno("unsuccessful tunnel"), "PROXY_REFUSED"],
    [
      bun(
        "ERR_PROXY_TUNNEL",
        "Proxy refused to open a tunnel: 403 Access violation",
      ),
      "PROXY_REFUSED",
    ],
  ];
  for (const [error, code] of cases) {
    assert.equal(
      connectionError(error, { url, proxy: "http://127.0.0.1:3128" })?.code,
      code,
      String((error as Error).cause ?? error),
    );
  }
  // A close is a missing client certificate only with a CA configured and
  // no certificate presented; otherwise it is retried.
  const closed = node("UND_ERR_SOCKET", "other side closed");
  const tls = { ca: ["CA"], from: "certs.d/127.0.0.1:5443" };
  assert.equal(
    connectionError(closed, { url, tls })?.code,
    "TLS_CLIENT_CERT_REQUIRED",
  );
  assert.equal(connectionError(closed, { url }), undefined);
  assert.equal(
    connectionError(closed, { url, tls: { ...tls, cert: "C", key: "K" } }),
    undefined,
  );
  assert.equal(
    connectionError(node("ECONNRESET", "read ECONNRESET"), {
      url: new URL("http://127.0.0.1:5000/v2/"),
      tls,
    }),
    undefined,
  );
  // The proxy's password is not quoted.
  const refused = connectionError(deno("unsuccessful tunnel"), {
    url,
    proxy: "http://me:secret@127.0.0.1:3128",
  });
  assert.ok(refused && !refused.message.includes("secret"), refused?.message);
});
