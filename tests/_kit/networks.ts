/**
 * Fixtures for the TLS, proxy and mirror tests: a CA and certificates made
 * by `openssl` in a temp dir, a TLS `docker-registry` holding the golden
 * image, and `tinyproxy` as a forward proxy on 127.0.0.1 whose log shows the
 * CONNECTs. Every process is stopped by its PID through `Cleanup`.
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Cleanup, tempDir } from "./cleanup.ts";
import { freePort, waitListening } from "./http.ts";
import { stopChild } from "./processes.ts";
import {
  pushLayout,
  type Registry,
  type RegistryAuthConfig,
  startRegistry,
} from "./registry.ts";
import { LAYOUT } from "./registry_client.ts";
import { openssl, runs, selfSignedCert, skipUnless } from "./tools.ts";

/** Whether tinyproxy is installed. */
export const HAS_TINYPROXY: boolean = runs("tinyproxy", ["-v"]);

/** The `skip` of the proxy tests: a reason locally, `false` on CI. */
export const skipProxy: string | false = skipUnless(
  HAS_TINYPROXY,
  "not installed: tinyproxy",
);

/** Fails on CI when tinyproxy is missing. */
export function requireTinyproxy(): void {
  if (!HAS_TINYPROXY) {
    throw new Error(
      "CI is set but tinyproxy is missing: apt-get install -y tinyproxy (see .ci/run)",
    );
  }
}

/** A CA and what it signs, as files in one dir. */
export interface TestCa {
  dir: string;
  /** The CA certificate (PEM file). */
  cert: string;
  /**
   * Issues a certificate (v3, so rustls takes it) with `san`
   * (`IP:127.0.0.1`) for a server, or for a client; `days` may be negative
   * (expired). Returns the certificate and key paths.
   */
  issue(
    name: string,
    options: { san?: string; client?: boolean; days?: number },
  ): { cert: string; key: string };
}

/** A fresh CA made by openssl in a temp dir. */
export async function makeCa(cleanup: Cleanup, name = "ca"): Promise<TestCa> {
  const dir = await tempDir(cleanup, "tls");
  const cert = join(dir, `${name}.crt`);
  const caKey = join(dir, `${name}.key`);
  selfSignedCert({ key: caKey, cert }, `/CN=docker-save test ${name}`, 2);
  return {
    dir,
    cert,
    issue(leaf, { san, client, days = 2 }) {
      const key = join(dir, `${leaf}.key`);
      const csr = join(dir, `${leaf}.csr`);
      const out = join(dir, `${leaf}.pem`);
      const ext = join(dir, `${leaf}.ext`);
      openssl([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        `/CN=${leaf}`,
      ]);
      spawnSync("sh", [
        "-c",
        `printf '%s\\n' "$1" > "$2"`,
        "sh",
        client ? "extendedKeyUsage=clientAuth" : `subjectAltName=${san}`,
        ext,
      ]);
      openssl([
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        cert,
        "-CAkey",
        caKey,
        "-CAcreateserial",
        "-out",
        out,
        "-days",
        String(days),
        "-extfile",
        ext,
      ]);
      return { cert: out, key };
    },
  };
}

/**
 * The options that trust `ca` for `registry` only, from the `tls` option
 * (no certs.d directory of the machine's).
 */
export function trusting(
  registry: Registry,
  ca: TestCa,
): { certsDirectories: false; tls: Record<string, { ca: string }> } {
  return {
    certsDirectories: false,
    tls: { [registry.host]: { ca: readFileSync(ca.cert, "utf8") } },
  };
}

/**
 * A plain registry holding the golden `oracle/basic:v1`, and a TLS registry
 * serving the same storage with a certificate of `ca` for `san`, asking for
 * client certificates of `clientCa` when given.
 */
export async function tlsRegistry(
  cleanup: Cleanup,
  ca: TestCa,
  options: {
    san?: string;
    days?: number;
    clientCa?: TestCa;
    auth?: RegistryAuthConfig;
  } = {},
): Promise<Registry> {
  const plain = await startRegistry(cleanup);
  await pushLayout(LAYOUT, "basic", plain.url, "oracle/basic", "v1");
  const server = ca.issue(`server-${Math.random().toString(36).slice(2)}`, {
    san: options.san ?? "IP:127.0.0.1,DNS:localhost",
    days: options.days,
  });
  return await startRegistry(cleanup, options.auth, {
    storage: plain.dir,
    tls: {
      certificate: server.cert,
      key: server.key,
      clientcas: options.clientCa ? [options.clientCa.cert] : undefined,
    },
  });
}

/** A running tinyproxy. */
export interface Tinyproxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The CONNECT request lines it logged (`CONNECT host:port HTTP/1.1`). */
  connects(): Promise<string[]>;
  /** Every request line it logged. */
  requests(): Promise<string[]>;
}

/**
 * Starts tinyproxy on 127.0.0.1 with its log in a temp dir; `connectPorts`
 * limits the ports it tunnels to (it refuses others with 403); `basicAuth`
 * makes it ask for credentials (407).
 */
export async function startTinyproxy(
  cleanup: Cleanup,
  options: {
    connectPorts?: number[];
    basicAuth?: { username: string; password: string };
  } = {},
): Promise<Tinyproxy> {
  const dir = await tempDir(cleanup, "tinyproxy");
  const log = join(dir, "tinyproxy.log");
  for (let attempt = 0;; attempt++) {
    const port = await freePort();
    const config = join(dir, "tinyproxy.conf");
    await writeFile(
      config,
      [
        `Port ${port}`,
        "Listen 127.0.0.1",
        "Timeout 60",
        `LogFile "${log}"`,
        "LogLevel Connect",
        "MaxClients 50",
        "Allow 127.0.0.1",
        ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
        ...(options.basicAuth
          ? [
            `BasicAuth ${options.basicAuth.username} ${options.basicAuth.password}`,
          ]
          : []),
        "",
      ].join("\n"),
    );
    const child = spawn("tinyproxy", ["-d", "-c", config], {
      stdio: ["ignore", "ignore", "ignore"],
    });
    const exited = new Promise<void>((resolve) => child.once("exit", resolve));
    child.once("error", () => {});
    const stop = () => stopChild(child, exited);
    if (await waitListening(port, exited)) {
      cleanup.add(stop);
      const lines = async () => {
        try {
          return (await readFile(log, "utf8")).split("\n")
            .map((line) => /Request \(file descriptor \d+\): (.*)$/.exec(line))
            .filter((m) => m !== null).map((m) => m![1]);
        } catch {
          return [];
        }
      };
      return {
        url: `http://127.0.0.1:${port}`,
        requests: lines,
        connects: async () =>
          (await lines()).filter((line) => line.startsWith("CONNECT ")),
      };
    }
    await stop();
    if (attempt >= 3) throw new Error(`tinyproxy did not start on ${port}`);
  }
}
