/**
 * Registry pulls through a forward proxy, the same way on every runtime:
 * Debian's `tinyproxy` on 127.0.0.1 in front of a TLS `docker-registry`
 * (its log shows the CONNECTs, and nothing else: credentials never reach
 * it), chosen by the `proxy` option or `HTTPS_PROXY` and bypassed for the
 * hosts `NO_PROXY` names; a proxy refusing the CONNECT fails at once. (The
 * `NO_PROXY` rules: tests/unit/registry_proxy_rules.test.ts.)
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { DockerSaveError } from "../../src/model/errors.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { assertSameBytes } from "../_kit/bytes.ts";
import { tempDir } from "../_kit/cleanup.ts";
import {
  makeCa,
  requireTinyproxy,
  skipProxy,
  startTinyproxy,
  tlsRegistry,
  trusting,
} from "../_kit/networks.ts";
import { runCli } from "../_kit/processes.ts";
import { registryTest } from "../_kit/registry.ts";
import { basic, FAST, PASS, saved, USER } from "../_kit/registry_client.ts";

// No proxy settings of the machine, and no update check of Deno's (it
// would go through the proxy too).
const QUIET_ENV = {
  NO_PROXY: "",
  no_proxy: "",
  HTTP_PROXY: "",
  http_proxy: "",
  https_proxy: "",
  HTTPS_PROXY: "",
  DENO_NO_UPDATE_CHECK: "1",
};

/** A registry test that needs tinyproxy too. */
function proxyTest(
  name: string,
  fn: Parameters<typeof registryTest>[1],
): void {
  if (skipProxy) {
    test(name, { skip: skipProxy }, () => {});
    return;
  }
  registryTest(name, async (cleanup) => {
    requireTinyproxy();
    await fn(cleanup);
  });
}

proxyTest(
  "fromRegistry() goes through the proxy option: the proxy sees one CONNECT per connection and no credentials",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca, {
      auth: { htpasswd: { username: USER, password: PASS } },
    });
    const proxy = await startTinyproxy(cleanup);
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      proxy: proxy.url,
      credentials: { registry: registry.host, username: USER, password: PASS },
      ...trusting(registry, ca),
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    const requests = await proxy.requests();
    assert.ok(requests.length > 0, "the proxy saw nothing");
    for (const line of requests) {
      assert.equal(line, `CONNECT ${registry.host} HTTP/1.1`);
    }
  },
);

proxyTest(
  "the CLI goes through HTTPS_PROXY on every runtime, and NO_PROXY bypasses it",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca);
    const proxy = await startTinyproxy(cleanup);
    const certDir = await tempDir(cleanup, "cert-dir");
    const out = await tempDir(cleanup, "out");
    await copyFile(ca.cert, join(certDir, "ca.crt"));
    const pull = (file: string, env: Record<string, string>) =>
      runCli([
        "-q",
        "--cert-dir",
        certDir,
        "-o",
        join(out, file),
        `${registry.host}/oracle/basic:v1=oracle/basic:v1`,
      ], { ...QUIET_ENV, ...env });
    const through = await pull("a.tar", { HTTPS_PROXY: proxy.url });
    assert.equal(through.code, 0, through.stderr);
    assertSameBytes(
      new Uint8Array(readFileSync(join(out, "a.tar"))),
      basic.expected,
    );
    const registryConnects = async () =>
      (await proxy.connects()).filter((line) => line.includes(registry.host));
    const connects = await registryConnects();
    assert.ok(
      connects.includes(`CONNECT ${registry.host} HTTP/1.1`),
      `no CONNECT in ${connects}`,
    );
    const bypassed = await pull("b.tar", {
      https_proxy: proxy.url,
      NO_PROXY: "127.0.0.1",
    });
    assert.equal(bypassed.code, 0, bypassed.stderr);
    assert.deepEqual(await registryConnects(), connects);
    // The option wins over the environment.
    const option = await runCli([
      "-q",
      "--cert-dir",
      certDir,
      "--proxy",
      proxy.url,
      "-o",
      join(out, "c.tar"),
      `${registry.host}/oracle/basic:v1=oracle/basic:v1`,
    ], { ...QUIET_ENV, HTTPS_PROXY: "http://127.0.0.1:9" });
    assert.equal(option.code, 0, option.stderr);
    assert.ok((await registryConnects()).length > connects.length);
  },
);

proxyTest(
  "a proxy refusing the CONNECT fails the pull at once with PROXY_REFUSED",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca);
    const proxy = await startTinyproxy(cleanup, { connectPorts: [443] });
    const start = Date.now();
    await assert.rejects(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...FAST,
        retry: { attempts: 5, delay: 2000 },
        proxy: proxy.url,
        ...trusting(registry, ca),
      }),
      (error: unknown) => {
        assert.ok(error instanceof DockerSaveError, String(error));
        assert.equal(error.code, "PROXY_REFUSED", error.message);
        assert.match(error.message, /refused to open a tunnel/);
        return true;
      },
    );
    assert.ok(Date.now() - start < 1900, `took ${Date.now() - start} ms`);
  },
);

proxyTest(
  "proxy credentials in the proxy URL go to the proxy; wrong ones are PROXY_REFUSED",
  async (cleanup) => {
    const ca = await makeCa(cleanup);
    const registry = await tlsRegistry(cleanup, ca);
    const proxy = await startTinyproxy(cleanup, {
      basicAuth: { username: "me", password: "s3cret" },
    });
    const withCredentials = proxy.url.replace("//", "//me:s3cret@");
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      proxy: withCredentials,
      ...trusting(registry, ca),
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.ok((await proxy.connects()).length > 0);
    await assert.rejects(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...FAST,
        proxy: proxy.url.replace("//", "//me:wrong@"),
        ...trusting(registry, ca),
      }),
      (error: unknown) => {
        assert.ok(error instanceof DockerSaveError, String(error));
        assert.equal(error.code, "PROXY_REFUSED", error.message);
        assert.ok(!error.message.includes("wrong"), error.message);
        return true;
      },
    );
  },
);
