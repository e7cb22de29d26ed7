/**
 * Registries over TLS with a private CA, as companies run them: Debian's
 * `docker-registry` with `http.tls` (a certificate from a CA openssl makes
 * here) and again with `clientcas` (mutual TLS), on 127.0.0.1. A `certs.d`
 * directory, `--cert-dir`, the `tls` option and the runtime's CA variable
 * each make it work; without them, or with a bad certificate, the pull
 * fails at once with its own code.
 *
 * @module
 */

import assert from "node:assert/strict";
import { copyFile, mkdir } from "node:fs/promises";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DockerSaveError } from "../../src/model/errors.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { assertSameBytes } from "../_kit/bytes.ts";
import { tempDir } from "../_kit/cleanup.ts";
import { makeCa, tlsRegistry, trusting } from "../_kit/networks.ts";
import { runCli } from "../_kit/processes.ts";
import { registryTest } from "../_kit/registry.ts";
import { basic, FAST, saved } from "../_kit/registry_client.ts";

const ONE_TRY = { ...FAST, retry: { attempts: 5, delay: 2000 } };

/** Rejects with a DockerSaveError of `code` within a second (no retries). */
async function failsAtOnce(
  pulling: Promise<unknown>,
  code: string,
  pattern: RegExp,
): Promise<void> {
  const start = Date.now();
  await assert.rejects(pulling, (error: unknown) => {
    assert.ok(error instanceof DockerSaveError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, pattern);
    return true;
  });
  // Five retries with a 2 s first delay would take over a minute.
  assert.ok(Date.now() - start < 1900, `took ${Date.now() - start} ms`);
}

registryTest(
  "fromRegistry() trusts a private CA from certs.d/HOST and speaks HTTPS to a loopback registry",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca);
    const certsD = await tempDir(cleanup, "certs.d");
    await mkdir(join(certsD, registry.host));
    await copyFile(ca.cert, join(certsD, registry.host, "ca.crt"));
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      certsDirectories: ["/nonexistent", certsD],
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    // Without the CA: the typed error, at once.
    await failsAtOnce(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...ONE_TRY,
        tls: { [registry.host]: {} },
        certsDirectories: false,
      }),
      "TLS_UNKNOWN_CA",
      /unknown authority/,
    );
  },
);

registryTest(
  "fromRegistry() takes the CA from the tls option",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca);
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      ...trusting(registry, ca),
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
  },
);

registryTest(
  "fromRegistry() presents a client certificate from certs.d or the tls option; without one, TLS_CLIENT_CERT_REQUIRED",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const clients = await makeCa(cleanup, "client-ca");
    const registry = await tlsRegistry(cleanup, ca, { clientCa: clients });
    const client = clients.issue("client", { client: true });
    const certsD = await tempDir(cleanup, "certs.d");
    const dir = join(certsD, registry.host);
    await mkdir(dir);
    await copyFile(ca.cert, join(dir, "ca.crt"));
    await copyFile(client.cert, join(dir, "client.cert"));
    await copyFile(client.key, join(dir, "client.key"));
    const fromCertsD = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      certsDirectories: [certsD],
    });
    assertSameBytes(await saved("oracle/basic:v1", fromCertsD), basic.expected);
    const fromOption = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      certsDirectories: false,
      tls: {
        [registry.host]: {
          ca: readFileSync(ca.cert, "utf8"),
          cert: readFileSync(client.cert, "utf8"),
          key: readFileSync(client.key, "utf8"),
        },
      },
    });
    assertSameBytes(await saved("oracle/basic:v1", fromOption), basic.expected);
    await failsAtOnce(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...ONE_TRY,
        ...trusting(registry, ca),
      }),
      "TLS_CLIENT_CERT_REQUIRED",
      /client certificate/,
    );
  },
);

registryTest(
  "fromRegistry() fails at once with TLS_HOSTNAME_MISMATCH for a certificate of another name",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca, {
      san: "DNS:other.example",
    });
    await failsAtOnce(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...ONE_TRY,
        ...trusting(registry, ca),
      }),
      "TLS_HOSTNAME_MISMATCH",
      /not valid for 127\.0\.0\.1/,
    );
  },
);

registryTest(
  "fromRegistry() fails at once with TLS_CERT_EXPIRED for an expired certificate",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca, { days: -1 });
    await failsAtOnce(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...ONE_TRY,
        ...trusting(registry, ca),
      }),
      "TLS_CERT_EXPIRED",
      /expired/,
    );
  },
);

registryTest(
  "the CLI takes --cert-dir, and the runtime's CA variable (NODE_EXTRA_CA_CERTS, DENO_CERT) still works",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const clients = await makeCa(cleanup, "client-ca");
    const registry = await tlsRegistry(cleanup, ca, { clientCa: clients });
    const client = clients.issue("client", { client: true });
    const certDir = await tempDir(cleanup, "cert-dir");
    await copyFile(ca.cert, join(certDir, "ca.crt"));
    await copyFile(client.cert, join(certDir, "client.cert"));
    await copyFile(client.key, join(certDir, "client.key"));
    const out = await tempDir(cleanup, "out");
    const withDir = await runCli([
      "-q",
      "--cert-dir",
      certDir,
      "-o",
      join(out, "a.tar"),
      `${registry.host}/oracle/basic:v1=oracle/basic:v1`,
    ]);
    assert.equal(withDir.code, 0, withDir.stderr);
    assertSameBytes(
      new Uint8Array(readFileSync(join(out, "a.tar"))),
      basic.expected,
    );
    // The CA from the environment, the client certificate from --cert-dir.
    const clientOnly = await tempDir(cleanup, "client-only");
    await copyFile(client.cert, join(clientOnly, "client.cert"));
    await copyFile(client.key, join(clientOnly, "client.key"));
    const withEnv = await runCli([
      "-q",
      "--cert-dir",
      clientOnly,
      "-o",
      join(out, "b.tar"),
      `${registry.host}/oracle/basic:v1=oracle/basic:v1`,
    ], { NODE_EXTRA_CA_CERTS: ca.cert, DENO_CERT: ca.cert });
    assert.equal(withEnv.code, 0, withEnv.stderr);
    assertSameBytes(
      new Uint8Array(readFileSync(join(out, "b.tar"))),
      basic.expected,
    );
    const without = await runCli([
      "-q",
      "--cert-dir",
      clientOnly,
      "-o",
      join(out, "c.tar"),
      `${registry.host}/oracle/basic:v1=oracle/basic:v1`,
    ]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /unknown authority/);
    assert.equal(without.stderr.trim().split("\n").length, 1, without.stderr);
  },
);

registryTest(
  "the CLI trusts a CA in the bundle SSL_CERT_FILE names, on every runtime",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca);
    // A bundle as distributions ship one: the system roots, then ours.
    const bundle = join(await tempDir(cleanup, "bundle"), "bundle.pem");
    let system = "";
    try {
      system = readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8");
    } catch { /* no system bundle: ours alone */ }
    writeFileSync(bundle, system + readFileSync(ca.cert, "utf8"));
    const out = await tempDir(cleanup, "out");
    // An empty --cert-dir only makes the loopback registry HTTPS.
    const empty = await tempDir(cleanup, "cert-dir");
    const pull = (file: string, env: Record<string, string>) =>
      runCli([
        "-q",
        "--cert-dir",
        empty,
        "-o",
        join(out, file),
        `${registry.host}/oracle/basic:v1=oracle/basic:v1`,
      ], env);
    const withBundle = await pull("a.tar", { SSL_CERT_FILE: bundle });
    assert.equal(withBundle.code, 0, withBundle.stderr);
    assertSameBytes(
      new Uint8Array(readFileSync(join(out, "a.tar"))),
      basic.expected,
    );
    // The bundle is what made it work.
    const without = await pull("b.tar", {});
    assert.equal(without.code, 1);
    assert.match(without.stderr, /unknown authority/);
  },
);
