/**
 * Registry fixtures for the integration tests: Debian's `docker-registry`
 * (the CNCF distribution registry) on 127.0.0.1 with a config written into a
 * temp dir, a small token server, a fault-injecting proxy, and a push helper.
 *
 * Every daemon is started as a child process or an in-process server and
 * stopped by its PID (or closed) through a `Cleanup` stack, which tests empty
 * in `finally`. A process `exit` hook kills any registry still running.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { test } from "node:test";
import { createHash, createPrivateKey, createSign } from "node:crypto";
import {
  createServer,
  type IncomingMessage,
  request as httpRequest,
  type Server,
  type ServerResponse,
} from "node:http";
import {
  connect as connectNet,
  createServer as createNetServer,
} from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** Debian's registry binary. */
export const REGISTRY_BIN = "/usr/bin/docker-registry";

const ci = !["", "0", "false"].includes(process.env.CI ?? "");

function runs(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: "ignore" });
  return result.error === undefined && result.status === 0;
}

/** Which tools the registry tests need, and whether each is installed. */
export const TOOLS = {
  registry: runs(REGISTRY_BIN, ["--version"]),
  htpasswd: runs("htpasswd", ["-Bbn", "a", "b"]),
  openssl: runs("openssl", ["version"]),
};

const missing = Object.entries(TOOLS).filter(([, ok]) => !ok).map(([name]) =>
  name
);

/**
 * The `skip` option of the registry tests: a reason locally when a tool is
 * missing; `false` on CI (CI set), where `requireTools()` then fails.
 */
export const skip: string | false = missing.length === 0 || ci
  ? false
  : `not installed: ${missing.join(", ")}`;

/** Fails the test when a tool is missing (reached only on CI). */
export function requireTools(): void {
  if (missing.length) {
    throw new Error(
      `CI is set but ${missing.join(", ")} ${
        missing.length > 1 ? "are" : "is"
      } missing: apt-get install -y docker-registry apache2-utils openssl (see .ci/run)`,
    );
  }
}

/**
 * A test (60 s at most) given a `Cleanup` that is emptied at its end, pass
 * or fail.
 */
export function withCleanup(
  name: string,
  fn: (cleanup: Cleanup) => Promise<void>,
): void {
  test(name, { timeout: 60_000 }, async () => {
    const cleanup = new Cleanup();
    try {
      await fn(cleanup);
    } finally {
      await cleanup.close();
    }
  });
}

/** Things to stop, in reverse order of starting. */
export class Cleanup {
  #steps: (() => Promise<void> | void)[] = [];

  /** Adds a step, run by `close()` before the ones added earlier. */
  add(step: () => Promise<void> | void): void {
    this.#steps.push(step);
  }

  /** Runs every step, even when one throws; throws the first error. */
  async close(): Promise<void> {
    let first: unknown;
    while (this.#steps.length) {
      try {
        await this.#steps.pop()!();
      } catch (error) {
        first ??= error;
      }
    }
    if (first !== undefined) throw first;
  }
}

/** A temp dir removed by `cleanup`. */
export async function tempDir(cleanup: Cleanup, prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), `docker-save-${prefix}-`));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) {
    try {
      if (child.pid) process.kill(child.pid, "SIGKILL");
    } catch { /* already gone */ }
  }
});

/** How the registry authenticates. */
export type RegistryAuthConfig =
  | { htpasswd: { username: string; password: string } }
  | {
    token: {
      realm: string;
      service: string;
      issuer: string;
      certPath: string;
    };
  };

/** More of a registry's config. */
export interface RegistryExtras {
  /** `http.tls`: serve HTTPS (and ask for client certificates). */
  tls?: { certificate: string; key: string; clientcas?: string[] };
  /** Serve another registry's storage (its `dir`), read-only in effect. */
  storage?: string;
  /** `proxy.remoteurl`: a pull-through cache of that registry. */
  remoteurl?: string;
  /** Log every request (the access log, on stderr). */
  accessLog?: boolean;
}

/** A running registry. */
export interface Registry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT` (`https:` with `tls`). */
  url: string;
  /** Its storage directory. */
  dir: string;
  /** Stops it now (also done by `cleanup`). */
  stop(): Promise<void>;
  /** The registry's PID. */
  pid: number;
  /** What it wrote on stderr so far (for failure messages). */
  log(): string;
}

/**
 * Starts `docker-registry serve` on 127.0.0.1 with filesystem storage in a
 * temp dir; `cleanup` stops it by its PID and removes the dir.
 */
export async function startRegistry(
  cleanup: Cleanup,
  auth?: RegistryAuthConfig,
  extras: RegistryExtras = {},
): Promise<Registry> {
  const dir = await tempDir(cleanup, "registry");
  const storage = extras.storage ?? join(dir, "data");
  const tlsYaml = extras.tls
    ? `  tls:
    certificate: ${extras.tls.certificate}
    key: ${extras.tls.key}
${
      extras.tls.clientcas
        ? `    clientcas:\n${
          extras.tls.clientcas.map((ca) => `      - ${ca}\n`).join("")
        }`
        : ""
    }`
    : "";
  const proxyYaml = extras.remoteurl
    ? `proxy:\n  remoteurl: ${extras.remoteurl}\n`
    : "";
  let authYaml = "";
  if (auth && "htpasswd" in auth) {
    const line = spawnSync("htpasswd", [
      "-Bbn",
      auth.htpasswd.username,
      auth.htpasswd.password,
    ], { encoding: "utf8" });
    if (line.status !== 0) throw new Error(`htpasswd failed: ${line.stderr}`);
    await writeFile(join(dir, "htpasswd"), line.stdout.trim() + "\n");
    authYaml = `auth:
  htpasswd:
    realm: test-realm
    path: ${join(dir, "htpasswd")}
`;
  } else if (auth && "token" in auth) {
    authYaml = `auth:
  token:
    realm: ${auth.token.realm}
    service: ${auth.token.service}
    issuer: ${auth.token.issuer}
    rootcertbundle: ${auth.token.certPath}
`;
  }
  for (let attempt = 0;; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config = join(dir, "config.yml");
    await writeFile(
      config,
      `version: 0.1
log:
  level: ${extras.accessLog ? "info" : "error"}
  accesslog:
    disabled: ${!extras.accessLog}
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
validation:
  manifests:
    urls:
      allow:
        - ^https?://
http:
  addr: ${host}
  secret: docker-save-test-secret
${tlsYaml}${proxyYaml}${authYaml}`,
    );
    const child = spawn(REGISTRY_BIN, ["serve", config], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    let stderr = "";
    child.stderr!.on("data", (chunk) => stderr += String(chunk));
    const exited = new Promise<void>((resolve) => child.once("exit", resolve));
    child.once("error", () => {});
    running.add(child);
    const stop = async () => {
      running.delete(child);
      await stopChild(child, exited);
      child.stderr!.destroy();
    };
    const ready = extras.tls
      ? await waitListening(port, exited)
      : await waitReady(`http://${host}/v2/`, exited);
    if (ready) {
      cleanup.add(stop);
      return {
        host,
        url: `${extras.tls ? "https" : "http"}://${host}`,
        dir: storage,
        stop,
        pid: child.pid!,
        log: () => stderr,
      };
    }
    await stop();
    if (attempt >= 3) {
      throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
    }
  }
}

async function waitReady(url: string, exited: Promise<void>) {
  let gone = false;
  exited.then(() => gone = true);
  for (let i = 0; i < 200 && !gone; i++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.status === 200 || response.status === 401) return true;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

/**
 * Whether 127.0.0.1:`port` takes connections before `exited` (a TLS
 * registry's readiness: the test's fetch does not trust its CA).
 */
export async function waitListening(port: number, exited: Promise<void>) {
  let gone = false;
  exited.then(() => gone = true);
  for (let i = 0; i < 200 && !gone; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connectNet(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

/** An in-process HTTP server on 127.0.0.1, closed by `cleanup`. */
export async function listen(
  cleanup: Cleanup,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; host: string; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  cleanup.add(() =>
    new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    })
  );
  const { port } = server.address() as { port: number };
  const host = `127.0.0.1:${port}`;
  return { server, host, url: `http://${host}` };
}

/**
 * A fresh RSA key and a self-signed certificate for it (a CA, a token
 * issuer), made by openssl, valid for two days.
 */
export function selfSigned(
  keyPath: string,
  certPath: string,
  subject: string,
): void {
  const made = spawnSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "2",
    "-subj",
    subject,
  ], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
}

/** A token server for the registry's `auth: token`. */
export interface TokenServer {
  /** The realm to configure (`http://127.0.0.1:PORT/token`). */
  realm: string;
  service: string;
  issuer: string;
  /** The signing certificate (PEM), the registry's rootcertbundle. */
  certPath: string;
  /** The query strings of the GET token requests received, in order. */
  requests: { scope: string | null; authorized: boolean }[];
  /** The form fields of the POST (OAuth2) token requests, in order. */
  grants: Record<string, string>[];
}

/**
 * Starts a token server that signs RS256 JWTs with a fresh key and
 * self-signed certificate (openssl). It grants pull and push on any
 * repository to `username:password` (GET with Basic auth) or to the holder of
 * `refreshToken` (POST, OAuth2 refresh-token grant), and nothing to anonymous
 * callers unless `anonymousPull`.
 */
export async function startTokenServer(
  cleanup: Cleanup,
  options: {
    username: string;
    password: string;
    anonymousPull?: boolean;
    expiresIn?: number;
    /**
     * Grants `username`'s access to a POST `grant_type=refresh_token` with
     * this refresh token (the distribution token spec's OAuth2 flow).
     */
    refreshToken?: string;
    /** Answers every POST with this status instead (a server without it). */
    refuseGrant?: number;
  },
): Promise<TokenServer> {
  const dir = await tempDir(cleanup, "token");
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  selfSigned(keyPath, certPath, "/CN=docker-save test token issuer");
  const key = createPrivateKey(await readFile(keyPath));
  const certDer = (await readFile(certPath, "utf8"))
    .replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const service = "docker-save-test";
  const issuer = "docker-save-test-issuer";
  const requests: TokenServer["requests"] = [];
  const expected = "Basic " +
    btoa(`${options.username}:${options.password}`);
  const b64url = (data: string | Uint8Array) =>
    (typeof data === "string" ? Buffer.from(data) : Buffer.from(data))
      .toString("base64url");
  const grants: TokenServer["grants"] = [];
  const sign = (authorized: boolean, scopes: string[], service: string) => {
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = scope.split(":");
      const granted = (actions ?? "").split(",").filter((action) =>
        authorized || (options.anonymousPull && action === "pull")
      );
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: authorized ? options.username : "",
      aud: service,
      exp: now + (options.expiresIn ?? 300),
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${
      b64url(JSON.stringify(claims))
    }`;
    const signature = createSign("RSA-SHA256").update(signingInput).sign(key);
    return `${signingInput}.${b64url(new Uint8Array(signature))}`;
  };
  const { url } = await listen(cleanup, (req, res) => {
    if (req.method === "POST") {
      let body = "";
      req.on("data", (chunk) => body += String(chunk));
      req.on("end", () => {
        const form = Object.fromEntries(new URLSearchParams(body));
        grants.push(form);
        if (options.refuseGrant) {
          res.writeHead(options.refuseGrant);
          res.end();
          return;
        }
        if (
          form.grant_type !== "refresh_token" ||
          options.refreshToken === undefined ||
          form.refresh_token !== options.refreshToken
        ) {
          res.writeHead(401, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "invalid_grant" }));
          return;
        }
        const token = sign(
          true,
          (form.scope ?? "").split(" ").filter(Boolean),
          form.service ?? service,
        );
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({
          access_token: token,
          expires_in: options.expiresIn ?? 300,
        }));
      });
      return;
    }
    const query = new URL(req.url ?? "/", "http://x").searchParams;
    const authorization = req.headers.authorization;
    const authorized = authorization === expected;
    requests.push({ scope: query.get("scope"), authorized });
    if (authorization !== undefined && !authorized) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ details: "bad credentials" }));
      return;
    }
    const token = sign(
      authorized,
      query.getAll("scope"),
      query.get("service") ?? service,
    );
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token, expires_in: options.expiresIn ?? 300 }));
  });
  return {
    realm: `${url}/token`,
    service,
    issuer,
    certPath,
    requests,
    grants,
  };
}

/** What the proxy does to one request. */
export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { cutAfter: number }
  | { corruptAt: number }
  | { ignoreRange: true }
  | { redirect: string };

/** A request as the proxy saw it. */
export interface ProxiedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
  /** Response body bytes passed on to the client so far. */
  sent?: number;
  /**
   * `done` once the response ended, `aborted` when the client hung up
   * before its end (the proxy then stops reading the registry too).
   */
  state?: "open" | "done" | "aborted";
}

/** A fault-injecting HTTP proxy in front of a registry. */
export interface Proxy {
  host: string;
  url: string;
  /** Every request received, in order. */
  requests: ProxiedRequest[];
}

/**
 * Starts a reverse proxy to `target` (`http://HOST:PORT`). `fault` is asked
 * for every request: `undefined` forwards it untouched; a fault answers with
 * a status, cuts the response body after `cutAfter` bytes (headers promise
 * all of them), flips the byte at `corruptAt`, forwards without the `Range`
 * header, or redirects.
 */
export async function startProxy(
  cleanup: Cleanup,
  target: string,
  fault: (request: ProxiedRequest, index: number) => Fault | undefined,
): Promise<Proxy> {
  const requests: ProxiedRequest[] = [];
  const upstream = new URL(target);
  const { host, url } = await listen(cleanup, (req, res) => {
    const seen: ProxiedRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      range: req.headers.range,
      authorization: req.headers.authorization,
    };
    requests.push(seen);
    const injected = fault(seen, requests.length - 1);
    if (injected && "status" in injected) {
      req.resume();
      res.writeHead(injected.status, injected.headers ?? {});
      res.end(injected.body ?? "");
      return;
    }
    if (injected && "redirect" in injected) {
      req.resume();
      res.writeHead(307, { location: injected.redirect });
      res.end();
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    if (injected && "ignoreRange" in injected) delete headers.range;
    const forward = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      seen.state = "open";
      seen.sent = 0;
      res.on("close", () => {
        seen.state = res.writableFinished ? "done" : "aborted";
        up.destroy();
      });
      let sent = 0;
      up.on("data", (chunk: Buffer) => {
        if (injected && "cutAfter" in injected) {
          const room = injected.cutAfter - sent;
          if (room <= 0) return;
          if (chunk.length >= room) {
            res.write(chunk.subarray(0, room), () => {
              up.destroy();
              res.socket?.destroy();
            });
            sent += room;
            return;
          }
        }
        if (
          injected && "corruptAt" in injected &&
          injected.corruptAt >= sent && injected.corruptAt < sent + chunk.length
        ) {
          chunk = Buffer.from(chunk);
          chunk[injected.corruptAt - sent] ^= 0xff;
        }
        sent += chunk.length;
        seen.sent = sent;
        // Back-pressure: a client that stops reading stops the registry's.
        if (!res.write(chunk)) {
          up.pause();
          res.once("drain", () => up.resume());
        }
      });
      up.on("end", () => res.end());
      up.on("error", () => res.destroy());
    });
    forward.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  });
  return { host, url, requests };
}

/** sha256 digest of bytes. */
export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/**
 * Pushes a blob with a monolithic upload (POST then PUT ?digest=); a blob the
 * registry has is skipped.
 */
export async function pushBlob(
  registry: string,
  repository: string,
  bytes: Uint8Array,
  headers: Record<string, string> = {},
): Promise<string> {
  const digest = sha256(bytes);
  const head = await fetch(`${registry}/v2/${repository}/blobs/${digest}`, {
    method: "HEAD",
    headers,
  });
  if (head.status === 200) return digest;
  const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, {
    method: "POST",
    headers,
  });
  await start.body?.cancel();
  if (start.status !== 202) {
    throw new Error(`Cannot start upload: status ${start.status}`);
  }
  const location = new URL(start.headers.get("location")!, registry);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/octet-stream" },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const text = await put.text();
  if (put.status !== 201) {
    throw new Error(`Cannot upload ${digest}: status ${put.status} ${text}`);
  }
  return digest;
}

/** Pushes a manifest or index under `reference` (a tag or its digest). */
export async function pushManifest(
  registry: string,
  repository: string,
  reference: string,
  bytes: Uint8Array,
  mediaType: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const put = await fetch(
    `${registry}/v2/${repository}/manifests/${reference}`,
    {
      method: "PUT",
      headers: { ...headers, "content-type": mediaType },
      body: bytes as Uint8Array<ArrayBuffer>,
    },
  );
  const text = await put.text();
  if (put.status !== 201) {
    throw new Error(
      `Cannot push manifest ${repository}:${reference}: status ${put.status} ${text}`,
    );
  }
  return sha256(bytes);
}

/**
 * Pushes the image an OCI layout's index.json names by `ref` (its
 * `org.opencontainers.image.ref.name`) as `repository:tag`: every blob, the
 * manifest and, for a nested index, each child, byte for byte, so digests are
 * preserved. (Debian's skopeo 1.9 cannot read a layout whose index entry has
 * a Docker media type, so the tests push with this.)
 */
export async function pushLayout(
  layout: string,
  ref: string,
  registry: string,
  repository: string,
  tag: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const blob = (digest: string) =>
    readFile(join(layout, "blobs", "sha256", digest.slice(7))).then((b) =>
      new Uint8Array(b)
    );
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
  const entry = index.manifests.find((
    m: { annotations?: Record<string, string> },
  ) => m.annotations?.["org.opencontainers.image.ref.name"] === ref);
  if (!entry) throw new Error(`no entry ${ref} in ${layout}`);
  const pushOne = async (
    descriptor: { digest: string; mediaType: string },
    reference: string,
  ): Promise<string> => {
    const bytes = await blob(descriptor.digest);
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    for (const child of parsed.manifests ?? []) {
      await pushOne(child, child.digest);
    }
    for (const part of [parsed.config, ...(parsed.layers ?? [])]) {
      if (part) {
        await pushBlob(registry, repository, await blob(part.digest), headers);
      }
    }
    return pushManifest(
      registry,
      repository,
      reference,
      bytes,
      descriptor.mediaType,
      headers,
    );
  };
  return await pushOne(entry, tag);
}

/** What `pushImage` needs of an image (any `Image` has it). */
export interface PushableImage {
  rawManifest(): Promise<Uint8Array>;
  manifest(): Promise<
    {
      mediaType?: string;
      config: { digest: string };
      layers: { digest: string; size: number; mediaType: string }[];
    }
  >;
  rawConfig(): Promise<Uint8Array>;
  openLayer(
    layer: { digest: string; size: number; mediaType: string },
  ): Promise<ReadableStream<Uint8Array>>;
}

/**
 * Pushes an image's blobs and manifest as `repository:reference`; returns
 * the manifest digest. `skip` names layer digests not to push (foreign).
 */
export async function pushImage(
  registry: string,
  repository: string,
  reference: string,
  image: PushableImage,
  headers: Record<string, string> = {},
  skip: readonly string[] = [],
): Promise<{ digest: string; size: number; mediaType: string }> {
  const manifest = await image.manifest();
  await pushBlob(registry, repository, await image.rawConfig(), headers);
  for (const layer of manifest.layers) {
    if (skip.includes(layer.digest)) continue;
    const bytes = new Uint8Array(
      await new Response(await image.openLayer(layer)).arrayBuffer(),
    );
    await pushBlob(registry, repository, bytes, headers);
  }
  const raw = await image.rawManifest();
  const mediaType = manifest.mediaType ??
    "application/vnd.oci.image.manifest.v1+json";
  const digest = await pushManifest(
    registry,
    repository,
    reference,
    raw,
    mediaType,
    headers,
  );
  return { digest, size: raw.byteLength, mediaType };
}

/** A push token from a token server, as `Authorization` headers. */
export async function tokenHeaders(
  server: TokenServer,
  username: string,
  password: string,
  repository: string,
): Promise<Record<string, string>> {
  const response = await fetch(
    `${server.realm}?service=${server.service}&scope=repository:${repository}:pull,push`,
    { headers: { authorization: `Basic ${btoa(`${username}:${password}`)}` } },
  );
  const { token } = await response.json();
  server.requests.length = 0;
  return { authorization: `Bearer ${token}` };
}

/**
 * Stops a child process by its PID: SIGTERM, then SIGKILL after 5 s;
 * resolves once it has exited (`exited`).
 */
export async function stopChild(
  child: import("node:child_process").ChildProcess,
  exited: Promise<void>,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) {
    return;
  }
  try {
    process.kill(child.pid, "SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid!, "SIGKILL");
    } catch { /* gone */ }
  }, 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * A registry with token auth (USER/PASS at its token server, with the other
 * token server options in `more`) holding the OCI layout `layout`'s `basic`
 * as `oracle/basic:v1`.
 */
export async function tokenRegistryWithBasic(
  cleanup: Cleanup,
  layout: string,
  username: string,
  password: string,
  more: Omit<Parameters<typeof startTokenServer>[1], "username" | "password"> =
    {},
): Promise<{ tokens: TokenServer; registry: Registry }> {
  const tokens = await startTokenServer(cleanup, {
    ...more,
    username,
    password,
  });
  const registry = await startRegistry(cleanup, { token: tokens });
  await pushLayout(
    layout,
    "basic",
    registry.url,
    "oracle/basic",
    "v1",
    await tokenHeaders(tokens, username, password, "oracle/basic"),
  );
  return { tokens, registry };
}

/** What a fake credential helper answers for one server. */
export type HelperAnswer =
  | { Username: string; Secret: string }
  | { exit: number; stdout?: string; stderr?: string };

/**
 * Writes `docker-credential-NAME`, a shell script in `dir` that appends
 * "ARGS SERVER" to a log for every call and answers per server (stdin) from
 * `answers`; an unknown server gets docker-credential-helpers' "credentials
 * not found in native keychain" and exit 1. `asked()` reads the log.
 */
export async function fakeCredentialHelper(
  dir: string,
  name: string,
  answers: Record<string, HelperAnswer>,
): Promise<{ asked(): Promise<string[]> }> {
  const log = join(dir, `${name}.log`);
  const quote = (text: string) => `'${text.replaceAll("'", `'"'"'`)}'`;
  const cases = Object.entries(answers).map(([server, answer]) => {
    const body = "exit" in answer
      ? `printf '%s' ${quote(answer.stdout ?? "")}; printf '%s' ${
        quote(answer.stderr ?? "")
      } >&2; exit ${answer.exit}`
      : `printf '%s' ${
        quote(JSON.stringify({ ServerURL: server, ...answer }))
      }`;
    return `  ${quote(server)}) ${body} ;;`;
  });
  const script = `#!/bin/sh
server=$(cat)
printf '%s %s\\n' "$*" "$server" >> ${quote(log)}
case "$server" in
${cases.join("\n")}
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
  const path = join(dir, `docker-credential-${name}`);
  await writeFile(path, script, { mode: 0o755 });
  return {
    asked: async () => {
      try {
        return (await readFile(log, "utf8")).trimEnd().split("\n");
      } catch {
        return [];
      }
    },
  };
}

/** Puts `dir` first on `PATH` until `cleanup`. */
export function prependPath(cleanup: Cleanup, dir: string): void {
  const before = process.env.PATH;
  process.env.PATH = `${dir}:${before ?? "/usr/bin:/bin"}`;
  cleanup.add(() => {
    process.env.PATH = before;
  });
}
