/**
 * Registry fixtures for the integration tests: Debian's `docker-registry`
 * (the CNCF distribution registry) on 127.0.0.1 with a config written into a
 * temp dir, a small token server, a fault-injecting proxy, push helpers, a
 * fake docker credential helper, and `registryTest` (skipped without the
 * tools, failing on CI).
 *
 * Every daemon is started as a child process or an in-process server and
 * stopped by its PID (or closed) through a `Cleanup` stack, which tests empty
 * in `finally`. A process `exit` hook kills any registry still running.
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import { createPrivateKey, createSign } from "node:crypto";
import { request as httpRequest } from "node:http";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import process from "node:process";
import { Cleanup, tempDir } from "./cleanup.ts";
import { digestOf } from "./digest.ts";
import { freePort, listen, waitAnswers, waitListening } from "./http.ts";
import { killOnExit, stopChild } from "./processes.ts";
import { basicAuth, LAYOUT } from "./registry_client.ts";
import { REGISTRY_TIMEOUT } from "./time.ts";
import { runs, selfSignedCert, skipUnless } from "./tools.ts";

/** Debian's registry binary. */
export const REGISTRY_BIN = "/usr/bin/docker-registry";

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
export const registrySkip: string | false = skipUnless(
  missing.length === 0,
  `not installed: ${missing.join(", ")}`,
);

/** Fails the test when a tool is missing (reached only on CI). */
export function requireRegistryTools(): void {
  if (missing.length) {
    throw new Error(
      `CI is set but ${missing.join(", ")} ${
        missing.length > 1 ? "are" : "is"
      } missing: apt-get install -y docker-registry apache2-utils openssl (see .ci/run)`,
    );
  }
}

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
    const forget = killOnExit(child);
    const stop = async () => {
      forget();
      await stopChild(child, exited);
      child.stderr!.destroy();
    };
    const ready = extras.tls
      ? await waitListening(port, exited)
      : await waitAnswers(`http://${host}/v2/`, exited, [200, 401]);
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
  selfSignedCert(
    { key: keyPath, cert: certPath },
    "/CN=docker-save test token issuer",
    1,
  );
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
  const digest = digestOf(bytes);
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
  return digestOf(bytes);
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

/** The registry tests: skipped without the tools, failing on CI. */
export function registryTest(
  name: string,
  fn: (cleanup: Cleanup) => Promise<void>,
) {
  test(name, { skip: registrySkip, timeout: REGISTRY_TIMEOUT }, async () => {
    requireRegistryTools();
    const cleanup = new Cleanup();
    try {
      await fn(cleanup);
    } finally {
      await cleanup.close();
    }
  });
}

/** An htpasswd registry for `user` holding oracle/basic:v1 (the golden case). */
export async function privateRegistry(
  cleanup: Cleanup,
  user: string,
  pass: string,
): Promise<Registry> {
  const registry = await startRegistry(cleanup, {
    htpasswd: { username: user, password: pass },
  });
  await pushLayout(LAYOUT, "basic", registry.url, "oracle/basic", "v1", {
    authorization: basicAuth(user, pass),
  });
  return registry;
}
