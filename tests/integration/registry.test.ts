/**
 * `fromRegistry()` against Debian's real `docker-registry` (the CNCF
 * distribution registry) on 127.0.0.1: anonymous, htpasswd and token auth, a
 * two-platform index, pull by digest, and faults injected by a proxy (a cut
 * transfer, a 500, corrupt bytes, an ignored Range, a cross-host redirect).
 * Plus unit tests over an injected `fetch` that need no registry.
 *
 * Without docker-registry (or htpasswd, openssl) the registry tests are
 * skipped, unless CI is set: then they fail (`.ci/run` installs them).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DockerSaveError } from "../../src/model/errors.ts";
import { MEDIA_TYPES } from "../../src/model/image.ts";
import { save } from "../../src/save/save.ts";
import { saveResponse } from "../../src/save/response.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import {
  fromRegistry,
  normalizeReference,
} from "../../src/sources/registry/pull.ts";
import { parseReference } from "../../src/model/image_reference.ts";
import { parseChallenges } from "../../src/sources/registry/auth.ts";
import { assertSameBytes, json, text } from "../_kit/bytes.ts";
import { type Cleanup, tempDir } from "../_kit/cleanup.ts";
import { digestOf } from "../_kit/digest.ts";
import { fakeFetch, serveBuilt } from "../_kit/fake_registry.ts";
import { listen } from "../_kit/http.ts";
import { buildGzipImage, payload } from "../_kit/images.ts";
import {
  type Proxy,
  pushImage,
  pushLayout,
  pushManifest,
  type Registry,
  registryTest,
  startProxy,
  startRegistry,
  tokenRegistryWithBasic,
} from "../_kit/registry.ts";
import {
  basic,
  FAST,
  LAYOUT,
  PASS,
  saved,
  USER,
} from "../_kit/registry_client.ts";

/** An anonymous registry holding oracle/basic:v1 (the golden case). */
async function basicRegistry(cleanup: Cleanup): Promise<Registry> {
  const registry = await startRegistry(cleanup);
  await pushLayout(LAYOUT, "basic", registry.url, "oracle/basic", "v1");
  return registry;
}

function isBlob(path: string): boolean {
  return path.includes("/blobs/sha256:");
}

/** The layer digests of the golden image, base first. */
async function basicLayers(): Promise<string[]> {
  const image = await fromOciLayout(LAYOUT, "basic");
  return (await image.manifest()).layers.map((layer) => layer.digest);
}

/**
 * Checks the Range headers of a cut blob's requests: the trailer probe, then
 * whole-blob requests (cut) each followed by resumes `bytes=N-` with
 * 0 < N <= `cut` (N depends on how much the runtime's proxy flushed before
 * the cut; a cut before any byte arrives is retried whole). Returns the
 * resumes.
 */
function assertResumed(
  ranges: (string | undefined)[],
  blobSize: number,
  cut: number,
): string[] {
  assert.equal(ranges[0], `bytes=${blobSize - 4}-${blobSize - 1}`);
  const resumes = ranges.slice(1).filter((r) => r !== undefined);
  assert.ok(resumes.length > 0, `no resume in ${JSON.stringify(ranges)}`);
  for (const range of resumes) {
    const start = Number(range.match(/^bytes=(\d+)-$/)?.[1]);
    assert.ok(start > 0 && start <= cut, `bad resume ${range}`);
  }
  return resumes;
}

// ---------------------------------------------------------------- no registry

test("parseReference() applies Docker Hub defaults", () => {
  assert.deepEqual(parseReference("alpine"), {
    registry: "docker.io",
    repository: "library/alpine",
    tag: "latest",
    digest: undefined,
  });
  assert.deepEqual(parseReference("docker.io/bitnami/redis:7"), {
    registry: "docker.io",
    repository: "bitnami/redis",
    tag: "7",
    digest: undefined,
  });
  assert.deepEqual(parseReference("index.docker.io/ubuntu:24.04"), {
    registry: "docker.io",
    repository: "library/ubuntu",
    tag: "24.04",
    digest: undefined,
  });
  assert.equal(
    normalizeReference("ghcr.io/org/app:1.2"),
    "ghcr.io/org/app:1.2",
  );
  assert.equal(normalizeReference("user/app"), "docker.io/user/app:latest");
});

test("parseReference() finds registries with a port, localhost and IPv6", () => {
  const digest = `sha256:${"a".repeat(64)}`;
  assert.deepEqual(parseReference(`localhost:5000/team/app@${digest}`), {
    registry: "localhost:5000",
    repository: "team/app",
    tag: undefined,
    digest,
  });
  assert.deepEqual(parseReference("localhost/app:v1"), {
    registry: "localhost",
    repository: "app",
    tag: "v1",
    digest: undefined,
  });
  assert.equal(parseReference("[::1]:5000/app").registry, "[::1]:5000");
  assert.equal(parseReference(`a/b:v1@${digest}`).tag, "v1");
});

test("parseReference() refuses bad references with BAD_REFERENCE", () => {
  for (
    const [reference, message] of [
      ["Alpine", 'repository "Alpine" must be lowercase'],
      ["alpine:-x", 'tag "-x"'],
      ["alpine@sha256:abc", 'digest "sha256:abc"'],
      ["a//b", 'repository part ""'],
      ["example.com/", "the repository is empty"],
    ]
  ) {
    assert.throws(() => parseReference(reference), {
      name: "DockerSaveError",
      code: "BAD_REFERENCE",
      message: new RegExp(
        `^Cannot parse reference "${
          reference.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        }": .*${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`,
      ),
    });
  }
});

test("parseChallenges() reads Bearer and Basic challenges", () => {
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull",error="insufficient_scope"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/alpine:pull",
        error: "insufficient_scope",
      },
    }],
  );
  assert.deepEqual(parseChallenges('Basic realm="a \\"b\\"", Bearer realm=x'), [
    { scheme: "basic", params: { realm: 'a "b"' } },
    { scheme: "bearer", params: { realm: "x" } },
  ]);
});

test("fromRegistry() uses HTTPS, sends Accept for all four manifest types, and HTTP for insecure hosts", async () => {
  for (
    const [reference, insecure, base] of [
      ["registry.example.com/app:v1", [], "https://registry.example.com"],
      [
        "registry.example.com/app:v1",
        ["registry.example.com"],
        "http://registry.example.com",
      ],
      [
        "registry.example.com:8443/app:v1",
        ["registry.example.com:8443"],
        "http://registry.example.com:8443",
      ],
      ["localhost:5000/app:v1", [], "http://localhost:5000"],
      ["127.1.2.3:5000/app:v1", [], "http://127.1.2.3:5000"],
      ["[::1]:5000/app:v1", [], "http://[::1]:5000"],
      ["alpine", [], "https://registry-1.docker.io"],
    ] as const
  ) {
    const { fetch, log } = fakeFetch(() => undefined);
    await assert.rejects(
      fromRegistry(reference, { ...FAST, fetch, insecure }),
      { name: "DockerSaveError", code: "MANIFEST_NOT_FOUND" },
    );
    assert.ok(
      log[0].url.startsWith(`${base}/v2/`),
      `${reference}: ${log[0].url}`,
    );
    const accept = log[0].headers.get("accept") ?? "";
    for (
      const type of [
        MEDIA_TYPES.dockerManifest,
        MEDIA_TYPES.dockerManifestList,
        MEDIA_TYPES.ociManifest,
        MEDIA_TYPES.ociIndex,
      ]
    ) {
      assert.ok(accept.includes(type), `Accept lacks ${type}`);
    }
  }
});

test("fromRegistry() refuses foreign layers unless allowed, then fetches them from urls without credentials", async () => {
  const built = await buildGzipImage({
    files: [[["a.txt", text("base\n")]], [["b.txt", text("foreign\n")]]],
    foreign: { index: 1, urls: ["https://cdn.example.net/layer.tar.gz"] },
  });
  const foreign = built.layers[1];
  const auth = `Basic ${btoa(`${USER}:${PASS}`)}`;
  const { fetch, log } = fakeFetch((url, headers) => {
    if (url.host === "cdn.example.net") {
      return new Response(foreign.blob as Uint8Array<ArrayBuffer>);
    }
    if (headers.get("authorization") !== auth) {
      return new Response("", {
        status: 401,
        headers: { "www-authenticate": 'Basic realm="r"' },
      });
    }
    return serveBuilt(built, url);
  });
  const options = {
    ...FAST,
    fetch,
    credentials: {
      registry: "registry.example.com",
      username: USER,
      password: PASS,
    },
  };
  await assert.rejects(fromRegistry("registry.example.com/app:v1", options), {
    name: "DockerSaveError",
    code: "FOREIGN_LAYER",
    message:
      `Cannot pull "registry.example.com/app:v1": layer ${foreign.digest} is foreign, to be fetched from https://cdn.example.net/layer.tar.gz; allow it with allowForeignLayers (--allow-foreign-layers)`,
  });
  const image = await fromRegistry("registry.example.com/app:v1", {
    ...options,
    allowForeignLayers: true,
  });
  assertSameBytes(
    await saved("app:v1", image),
    await saved("app:v1", built.image),
  );
  const cdn = log.filter((entry) => entry.url.includes("cdn.example.net"));
  assert.ok(cdn.length > 0);
  for (const entry of cdn) {
    assert.equal(entry.headers.get("authorization"), null);
  }
  assert.ok(
    log.some((entry) =>
      entry.url.includes("registry.example.com") &&
      entry.headers.get("authorization") === auth
    ),
  );
});

test("fromRegistry() reuses a Bearer token and fetches a new one when it is refused", async () => {
  const built = await buildGzipImage({ files: [[["a", text("a\n")]]] });
  let issued = 0;
  const valid = new Set<string>();
  const { fetch } = fakeFetch((url, headers) => {
    if (url.host === "auth.example.com") {
      assert.equal(url.searchParams.get("service"), "registry.example.com");
      assert.equal(url.searchParams.get("scope"), "repository:team/app:pull");
      const token = `t${++issued}`;
      valid.add(token);
      return new Response(JSON.stringify({ token, expires_in: 300 }));
    }
    const token = headers.get("authorization")?.replace(/^Bearer /, "");
    if (!token || !valid.has(token)) {
      return new Response("", {
        status: 401,
        headers: {
          "www-authenticate":
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull"',
        },
      });
    }
    if (url.pathname.endsWith("/manifests/v1")) {
      return new Response(built.manifest as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": MEDIA_TYPES.ociManifest },
      });
    }
    // The first token "expires" once the config is read.
    if (url.pathname.endsWith(digestOf(built.config))) {
      valid.delete("t1");
      return new Response(built.config as Uint8Array<ArrayBuffer>);
    }
    const blob = built.layers.find((l) => url.pathname.endsWith(l.digest));
    return blob
      ? new Response(blob.blob as Uint8Array<ArrayBuffer>)
      : new Response("", { status: 404 });
  });
  const image = await fromRegistry("registry.example.com/team/app:v1", {
    ...FAST,
    fetch,
  });
  assert.equal(issued, 1, "one token for the manifest and the config");
  assertSameBytes(
    await saved("app:v1", image, { layers: "compressed" }),
    await saved("app:v1", built.image, { layers: "compressed" }),
  );
  assert.equal(issued, 2, "a new token once the first was refused");
});

test("fromRegistry() sends credentials to a token realm but not where it redirects", async () => {
  const built = await buildGzipImage({ files: [[["a", text("a\n")]]] });
  const basicAuth = `Basic ${btoa(`${USER}:${PASS}`)}`;
  const { fetch, log } = fakeFetch((url, headers) => {
    if (url.host === "auth.example.com") {
      return new Response(null, {
        status: 307,
        headers: { location: `https://tokens.example.org/t${url.search}` },
      });
    }
    if (url.host === "tokens.example.org") {
      return new Response(JSON.stringify({ token: "tok" }));
    }
    if (headers.get("authorization") !== "Bearer tok") {
      return new Response("", {
        status: 401,
        headers: {
          "www-authenticate":
            'Bearer realm="https://auth.example.com/token",service="reg"',
        },
      });
    }
    if (url.pathname.endsWith(digestOf(built.config))) {
      return new Response(built.config as Uint8Array<ArrayBuffer>);
    }
    return new Response(built.manifest as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": MEDIA_TYPES.ociManifest },
    });
  });
  const image = await fromRegistry("registry.example.com/team/app:v1", {
    ...FAST,
    fetch,
    credentials: {
      registry: "registry.example.com",
      username: USER,
      password: PASS,
    },
  });
  assert.equal(image.digest, digestOf(built.manifest));
  const realm = log.find((entry) => entry.url.includes("auth.example.com"));
  assert.equal(realm?.headers.get("authorization"), basicAuth);
  const moved = log.filter((entry) => entry.url.includes("tokens.example.org"));
  assert.equal(moved.length, 1);
  assert.equal(moved[0].headers.get("authorization"), null);
});

test("fromRegistry() lists the available platforms when none matches", async () => {
  const index = json({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [
      ["amd64", undefined],
      ["arm64", "v8"],
      ["arm", "v7"],
      ["unknown", undefined],
    ].map(([architecture, variant], i) => ({
      mediaType: MEDIA_TYPES.ociManifest,
      digest: `sha256:${String(i).repeat(64)}`,
      size: 10,
      platform: {
        os: architecture === "unknown" ? "unknown" : "linux",
        architecture,
        ...(variant ? { variant } : {}),
      },
    })),
  });
  const { fetch } = fakeFetch(() =>
    new Response(index as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": MEDIA_TYPES.ociIndex },
    })
  );
  await assert.rejects(
    fromRegistry("registry.example.com/app:v1", {
      ...FAST,
      fetch,
      platform: "linux/s390x",
    }),
    {
      name: "DockerSaveError",
      code: "PLATFORM_NOT_FOUND",
      message:
        'Cannot choose platform linux/s390x from "registry.example.com/app:v1": it has linux/amd64, linux/arm64/v8, linux/arm/v7',
    },
  );
});

test("fromRegistry() retries a network error and gives up with REGISTRY_ERROR; a refused connection is not retried", async () => {
  const cases: [Error, string, number][] = [
    [
      new TypeError("fetch failed", {
        cause: Object.assign(new Error("read ECONNRESET"), {
          code: "ECONNRESET",
        }),
      }),
      "registry.example.com: read ECONNRESET (after 4 attempts)",
      4,
    ],
    // Retrying cannot help (network_error.ts).
    [
      new TypeError("connection refused"),
      "registry.example.com refused the connection (ECONNREFUSED)",
      1,
    ],
  ];
  for (const [error, reason, attempts] of cases) {
    let calls = 0;
    const fetch = (() => {
      calls++;
      return Promise.reject(error);
    }) as typeof globalThis.fetch;
    await assert.rejects(
      fromRegistry("registry.example.com/app:v1", {
        ...FAST,
        fetch,
        retry: { attempts: 3, delay: 1 },
      }),
      {
        name: "DockerSaveError",
        code: "REGISTRY_ERROR",
        message:
          `Cannot fetch manifest of "registry.example.com/app:v1": ${reason}`,
      },
    );
    assert.equal(calls, attempts);
  }
});

// ------------------------------------------------------------- real registry

registryTest(
  "fromRegistry() pulls oracle/basic:v1 anonymously, byte-identical to the golden tarball",
  async (cleanup) => {
    const registry = await basicRegistry(cleanup);
    const image = await fromRegistry(
      `${registry.host}/oracle/basic:v1`,
      FAST,
    );
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    const fromLayout = await fromOciLayout(LAYOUT, "basic");
    assertSameBytes(
      await saved("oracle/basic:v1", image, { layers: "compressed" }),
      await saved("oracle/basic:v1", fromLayout, { layers: "compressed" }),
    );
    assert.equal(
      image.digest,
      digestOf(await fromLayout.rawManifest()),
    );
  },
);

registryTest(
  "fromRegistry() produces the first tarball bytes before fetching any layer blob",
  async (cleanup) => {
    const registry = await basicRegistry(cleanup);
    const proxy = await startProxy(cleanup, registry.url, () => undefined);
    const image = await fromRegistry(`${proxy.host}/oracle/basic:v1`, FAST);
    const layers = await basicLayers();
    const reader = save([["oracle/basic:v1", image]]).getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    assert.ok(first.value!.byteLength > 0);
    const layerRequests = proxy.requests.filter((r) =>
      layers.some((digest) => r.path.endsWith(digest))
    );
    assert.deepEqual(layerRequests, []);
    await reader.cancel();
  },
);

registryTest(
  "fromRegistry() pulls with htpasswd basic auth from options or the docker config file",
  async (cleanup) => {
    const registry = await startRegistry(cleanup, {
      htpasswd: { username: USER, password: PASS },
    });
    const auth = { authorization: `Basic ${btoa(`${USER}:${PASS}`)}` };
    await pushLayout(LAYOUT, "basic", registry.url, "oracle/basic", "v1", auth);
    const reference = `${registry.host}/oracle/basic:v1`;

    const image = await fromRegistry(reference, {
      ...FAST,
      credentials: { registry: registry.host, username: USER, password: PASS },
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);

    const dir = await tempDir(cleanup, "docker-config");
    await mkdir(join(dir, ".docker"));
    const config = join(dir, ".docker", "config.json");
    await writeFile(
      config,
      JSON.stringify({
        auths: {
          "other.example.com": { auth: btoa("bob:nope") },
          [`http://${registry.host}/v2/`]: { auth: btoa(`${USER}:${PASS}`) },
        },
      }),
    );
    const fromConfig = await fromRegistry(reference, {
      ...FAST,
      dockerConfig: config,
    });
    assertSameBytes(await saved("oracle/basic:v1", fromConfig), basic.expected);

    await assert.rejects(fromRegistry(reference, FAST), {
      name: "DockerSaveError",
      code: "UNAUTHORIZED",
      message: new RegExp(
        `^Cannot pull manifest of "${reference}": ${registry.host} requires credentials`,
      ),
    });
    await assert.rejects(
      fromRegistry(reference, {
        ...FAST,
        credentials: {
          registry: registry.host,
          username: USER,
          password: "wrong",
        },
      }),
      {
        name: "DockerSaveError",
        code: "UNAUTHORIZED",
        message:
          `Cannot pull manifest of "${reference}": ${registry.host} refused the credentials of user "${USER}"`,
      },
    );
  },
);

registryTest(
  "fromRegistry() pulls with token auth, one token per scope, refreshed when refused",
  async (cleanup) => {
    const { tokens, registry } = await tokenRegistryWithBasic(
      cleanup,
      LAYOUT,
      USER,
      PASS,
    );
    const basicConfigDigest =
      (await (await fromOciLayout(LAYOUT, "basic")).manifest()).config.digest;
    // A proxy that refuses one blob request carrying a (valid) token, as a
    // registry does when a token expires.
    let refused = false;
    const proxy = await startProxy(cleanup, registry.url, (request) => {
      if (
        !refused && isBlob(request.path) && !request.range &&
        request.authorization?.startsWith("Bearer ") &&
        !request.path.endsWith(basicConfigDigest)
      ) {
        refused = true;
        return {
          status: 401,
          headers: {
            "www-authenticate":
              `Bearer realm="${tokens.realm}",service="${tokens.service}",scope="repository:oracle/basic:pull"`,
          },
        };
      }
      return undefined;
    });
    const image = await fromRegistry(`${proxy.host}/oracle/basic:v1`, {
      ...FAST,
      credentials: { registry: proxy.host, username: USER, password: PASS },
    });
    assert.deepEqual(tokens.requests, [
      { scope: "repository:oracle/basic:pull", authorized: true },
    ]);
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.ok(refused);
    assert.equal(tokens.requests.length, 2, "one refresh after the refusal");

    await assert.rejects(
      fromRegistry(`${registry.host}/oracle/basic:v1`, FAST),
      {
        name: "DockerSaveError",
        code: "UNAUTHORIZED",
        message: new RegExp(
          `^Cannot pull manifest of "${registry.host}/oracle/basic:v1": ${registry.host} does not let anonymous users pull it`,
        ),
      },
    );
    await assert.rejects(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...FAST,
        credentials: {
          registry: registry.host,
          username: USER,
          password: "wrong",
        },
      }),
      {
        name: "DockerSaveError",
        code: "UNAUTHORIZED",
        message: new RegExp(`refused the credentials of user "${USER}"`),
      },
    );
  },
);

registryTest(
  "fromRegistry() picks a platform from a two-platform index, and pulls by digest",
  async (cleanup) => {
    const registry = await startRegistry(cleanup);
    const amd64 = await buildGzipImage({
      files: [[["etc/arch", text("amd64\n")]]],
    });
    const arm64 = await buildGzipImage({
      architecture: "arm64",
      variant: "v8",
      files: [[["etc/arch", text("arm64\n")]]],
      mediaTypes: "docker",
    });
    const entries = [];
    for (
      const [built, platform] of [
        [amd64, { os: "linux", architecture: "amd64" }],
        [arm64, { os: "linux", architecture: "arm64", variant: "v8" }],
      ] as const
    ) {
      const pushed = await pushImage(
        registry.url,
        "multi/app",
        digestOf(built.manifest),
        built.image,
      );
      entries.push({ ...pushed, platform });
    }
    const index = text(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: entries,
    }));
    const indexDigest = await pushManifest(
      registry.url,
      "multi/app",
      "v1",
      index,
      MEDIA_TYPES.ociIndex,
    );
    const reference = `${registry.host}/multi/app:v1`;

    const byDefault = await fromRegistry(reference, FAST);
    assert.equal(byDefault.digest, digestOf(amd64.manifest));
    assert.deepEqual(byDefault.platform, {
      os: "linux",
      architecture: "amd64",
    });
    assertSameBytes(
      await saved("app:v1", byDefault),
      await saved("app:v1", amd64.image),
    );
    for (const platform of ["linux/arm64", "linux/arm64/v8", "linux/aarch64"]) {
      const image = await fromRegistry(reference, { ...FAST, platform });
      assert.equal(image.digest, digestOf(arm64.manifest), platform);
      assertSameBytes(
        await saved("app:v1", image),
        await saved("app:v1", arm64.image),
      );
    }
    await assert.rejects(
      fromRegistry(reference, { ...FAST, platform: "linux/riscv64" }),
      {
        name: "DockerSaveError",
        code: "PLATFORM_NOT_FOUND",
        message:
          `Cannot choose platform linux/riscv64 from "${reference}": it has linux/amd64, linux/arm64/v8`,
      },
    );

    // By digest: the index, and an image manifest directly.
    const byIndexDigest = await fromRegistry(
      `${registry.host}/multi/app@${indexDigest}`,
      { ...FAST, platform: "linux/arm64" },
    );
    assert.equal(byIndexDigest.digest, digestOf(arm64.manifest));
    const byDigest = await fromRegistry(
      `${registry.host}/multi/app@${digestOf(amd64.manifest)}`,
      FAST,
    );
    assert.equal(
      byDigest.reference,
      `${registry.host}/multi/app@${digestOf(amd64.manifest)}`,
    );
    await assert.rejects(
      fromRegistry(
        `${registry.host}/multi/app@${digestOf(amd64.manifest)}`,
        { ...FAST, platform: "linux/arm64" },
      ),
      {
        name: "DockerSaveError",
        code: "PLATFORM_NOT_FOUND",
        message: new RegExp("it is a single linux/amd64 image$"),
      },
    );
    await assert.rejects(
      fromRegistry(
        `${registry.host}/multi/app@sha256:${"0".repeat(64)}`,
        FAST,
      ),
      { name: "DockerSaveError", code: "MANIFEST_NOT_FOUND" },
    );
    await assert.rejects(fromRegistry(`${registry.host}/multi/app:v2`, FAST), {
      name: "DockerSaveError",
      code: "MANIFEST_NOT_FOUND",
      message:
        `Cannot fetch manifest of "${registry.host}/multi/app:v2": not found (status 404, MANIFEST_UNKNOWN: manifest unknown)`,
    });
  },
);

registryTest(
  "fromRegistry() verifies the manifest digest when pulling by digest",
  async (cleanup) => {
    const registry = await basicRegistry(cleanup);
    const digest = digestOf(
      await (await fromOciLayout(LAYOUT, "basic")).rawManifest(),
    );
    const proxy = await startProxy(
      cleanup,
      registry.url,
      (request) =>
        request.path.includes("/manifests/") ? { corruptAt: 40 } : undefined,
    );
    await assert.rejects(
      fromRegistry(`${proxy.host}/oracle/basic@${digest}`, FAST),
      {
        name: "DockerSaveError",
        code: "DIGEST_MISMATCH",
        message: new RegExp(
          `^Cannot verify manifest of "${proxy.host}/oracle/basic@${digest}": its bytes hash to sha256:[0-9a-f]{64}, expected ${digest}$`,
        ),
      },
    );
  },
);

/** A registry with a 2 MiB layer (plus the golden image), for the faults. */
async function bigRegistry(cleanup: Cleanup) {
  const registry = await startRegistry(cleanup);
  const built = await buildGzipImage({
    files: [
      [["small.txt", text("small\n")]],
      [["big.bin", payload(2 << 20)]],
    ],
  });
  await pushImage(registry.url, "big/app", "v1", built.image);
  const expected = await saved("big/app:v1", built.image);
  return { registry, built, expected, big: built.layers[1] };
}

registryTest(
  "fromRegistry() resumes a blob cut halfway with Range and writes the same bytes",
  async (cleanup) => {
    const { registry, expected, big } = await bigRegistry(cleanup);
    const half = Math.floor(big.blob.length / 2);
    const proxy = await startProxy(
      cleanup,
      registry.url,
      (request) =>
        request.path.endsWith(big.digest) && !request.range
          ? { cutAfter: half }
          : undefined,
    );
    const image = await fromRegistry(`${proxy.host}/big/app:v1`, FAST);
    assertSameBytes(await saved("big/app:v1", image), expected);
    const ranges = proxy.requests.filter((r) => r.path.endsWith(big.digest))
      .map((r) => r.range);
    // The trailer probe, the cut transfer, the resumed one (on Node:
    // Bun's proxy may cut earlier than asked).
    assertResumed(ranges, big.blob.length, half);
    assert.ok(big.blob.length > 1 << 20, "a blob of more than 1 MiB");
  },
);

registryTest(
  "fromRegistry() restarts a cut blob when the registry ignores Range",
  async (cleanup) => {
    const { registry, expected, big } = await bigRegistry(cleanup);
    const half = Math.floor(big.blob.length / 2);
    const proxy = await startProxy(
      cleanup,
      registry.url,
      (request) => {
        if (!request.path.endsWith(big.digest)) return undefined;
        return request.range ? { ignoreRange: true } : { cutAfter: half };
      },
    );
    const image = await fromRegistry(`${proxy.host}/big/app:v1`, FAST);
    assertSameBytes(await saved("big/app:v1", image), expected);
    const ranges = proxy.requests.filter((r) => r.path.endsWith(big.digest))
      .map((r) => r.range);
    // The trailer probe got the whole blob (Range ignored), so sizes are
    // counted: each of the two passes is cut, then restarted whole (the
    // proxy drops its Range) and skipped to where it was.
    const resumes = assertResumed(ranges, big.blob.length, half);
    assert.ok(resumes.length >= 2, JSON.stringify(ranges));
  },
);

registryTest(
  "fromRegistry() retries a 500 and a 429, then succeeds",
  async (cleanup) => {
    const { registry, expected, big } = await bigRegistry(cleanup);
    const failed = new Set<string>();
    const proxy = await startProxy(cleanup, registry.url, (request) => {
      const key = `${request.path} ${request.range}`;
      if (failed.has(key)) return undefined;
      failed.add(key);
      return request.path.includes("/manifests/")
        ? { status: 429, headers: { "retry-after": "0" } }
        : { status: 500, body: "boom" };
    });
    const image = await fromRegistry(`${proxy.host}/big/app:v1`, FAST);
    assertSameBytes(await saved("big/app:v1", image), expected);
    const bigRequests = proxy.requests.filter((r) =>
      r.path.endsWith(big.digest)
    );
    assert.equal(bigRequests.length, 4, "trailer and body, each twice");

    // Without retries the 500 is the error.
    const strict = await startProxy(
      cleanup,
      registry.url,
      (request) =>
        request.path.endsWith(big.digest) ? { status: 500 } : undefined,
    );
    const image2 = await fromRegistry(`${strict.host}/big/app:v1`, {
      ...FAST,
      retry: { attempts: 2, delay: 1 },
    });
    await assert.rejects(saved("big/app:v1", image2), {
      name: "DockerSaveError",
      code: "REGISTRY_ERROR",
      message:
        `Cannot fetch layer ${big.digest} of "${strict.host}/big/app:v1": the registry answered status 500 after 3 attempts`,
    });
  },
);

/** Reads a save() stream to its end or error; returns the bytes and error. */
async function drain(
  stream: ReadableStream<Uint8Array>,
): Promise<{ bytes: Uint8Array; error?: unknown }> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    return { bytes: new Uint8Array(Buffer.concat(chunks)) };
  } catch (error) {
    return { bytes: new Uint8Array(Buffer.concat(chunks)), error };
  }
}

registryTest(
  "fromRegistry() with a blob corrupted in transit errors the stream before a complete-looking tarball",
  async (cleanup) => {
    const { registry, expected, big } = await bigRegistry(cleanup);
    const proxy: Proxy = await startProxy(
      cleanup,
      registry.url,
      (request) =>
        request.path.endsWith(big.digest) && !request.range
          ? { corruptAt: big.blob.length - 20 }
          : undefined,
    );
    for (const layers of ["compressed", "uncompressed"] as const) {
      const image = await fromRegistry(`${proxy.host}/big/app:v1`, FAST);
      const { bytes, error } = await drain(
        save([["big/app:v1", image]], { layers }),
      );
      assert.ok(error instanceof DockerSaveError, `${layers}: ${error}`);
      assert.ok(
        ["DIGEST_MISMATCH", "BAD_LAYER", "DIFF_ID_MISMATCH"].includes(
          error.code,
        ),
        `${layers}: ${error.code}`,
      );
      assert.match(error.message, new RegExp(big.digest));
      if (layers === "compressed") {
        assert.equal(error.code, "DIGEST_MISMATCH");
      }
      assert.ok(bytes.byteLength < expected.byteLength);
      const tail = new TextDecoder().decode(bytes.subarray(-4096));
      assert.ok(!tail.includes("manifest.json"), "no manifest.json written");
    }
  },
);

registryTest(
  "fromRegistry() never sends Authorization to another host after a redirect",
  async (cleanup) => {
    const registry = await startRegistry(cleanup, {
      htpasswd: { username: USER, password: PASS },
    });
    const auth = `Basic ${btoa(`${USER}:${PASS}`)}`;
    await pushLayout(LAYOUT, "basic", registry.url, "oracle/basic", "v1", {
      authorization: auth,
    });
    // "Object storage": another host that serves blobs it reads from the
    // registry with its own credentials, and logs what it was sent.
    const storageLog: (string | undefined)[] = [];
    const storage = await listen(cleanup, (req, res) => {
      storageLog.push(req.headers.authorization);
      fetch(`${registry.url}${req.url}`, {
        headers: {
          authorization: auth,
          ...(req.headers.range ? { range: req.headers.range } : {}),
        },
      }).then(async (response) => {
        const headers: Record<string, string> = {};
        for (const name of ["content-length", "content-range"]) {
          const value = response.headers.get(name);
          if (value) headers[name] = value;
        }
        res.writeHead(response.status, headers);
        res.end(Buffer.from(await response.arrayBuffer()));
      });
    });
    const proxy = await startProxy(
      cleanup,
      registry.url,
      (request) =>
        isBlob(request.path)
          ? { redirect: `${storage.url}${request.path}` }
          : undefined,
    );
    const image = await fromRegistry(`${proxy.host}/oracle/basic:v1`, {
      ...FAST,
      credentials: { registry: proxy.host, username: USER, password: PASS },
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.ok(storageLog.length >= 4, "config and layers came from storage");
    assert.deepEqual(storageLog.filter((a) => a !== undefined), []);
    assert.ok(
      proxy.requests.some((r) => isBlob(r.path) && r.authorization === auth),
      "the registry itself got the credentials",
    );
  },
);

registryTest(
  "fromRegistry() sizes gzip layers from their trailer, and counts when asked or when the trailer is wrong",
  async (cleanup) => {
    const registry = await startRegistry(cleanup);
    const single = await buildGzipImage({
      files: [[["a.bin", payload(300_000, 3)]], [["b.txt", text("b\n")]]],
    });
    const multi = await buildGzipImage({
      files: [[["a.bin", payload(300_000, 4)]]],
      members: 3,
    });
    await pushImage(registry.url, "sizes/single", "v1", single.image);
    await pushImage(registry.url, "sizes/multi", "v1", multi.image);
    const proxy = await startProxy(cleanup, registry.url, () => undefined);
    const blobGets = (digest: string) =>
      proxy.requests.filter((r) => r.path.endsWith(digest)).map((r) =>
        r.range ?? "whole"
      );

    const trailer = await fromRegistry(`${proxy.host}/sizes/single:v1`, FAST);
    assertSameBytes(
      await saved("sizes/a:v1", trailer),
      await saved("sizes/a:v1", single.image),
    );
    const layer = single.layers[0];
    // In either order: the blob may be fetched ahead of its trailer probe
    // while the layer before it is written.
    assert.deepEqual(blobGets(layer.digest).sort(), [
      `bytes=${layer.blob.length - 4}-${layer.blob.length - 1}`,
      "whole",
    ]);

    proxy.requests.length = 0;
    const counted = await fromRegistry(`${proxy.host}/sizes/single:v1`, {
      ...FAST,
      uncompressedSizes: "count",
    });
    assertSameBytes(
      await saved("sizes/a:v1", counted),
      await saved("sizes/a:v1", single.image),
    );
    assert.deepEqual(blobGets(layer.digest), ["whole", "whole"]);

    // A multi-member gzip: the trailer has the last member's size only, and
    // save() catches the wrong size before writing past it.
    const wrong = await fromRegistry(`${proxy.host}/sizes/multi:v1`, FAST);
    await assert.rejects(saved("sizes/m:v1", wrong), {
      name: "DockerSaveError",
      code: "UNCOMPRESSED_SIZE_MISMATCH",
      message: new RegExp(`uncompressed layer ${multi.layers[0].digest}`),
    });
    const right = await fromRegistry(`${proxy.host}/sizes/multi:v1`, {
      ...FAST,
      uncompressedSizes: "count",
    });
    assertSameBytes(
      await saved("sizes/m:v1", right),
      await saved("sizes/m:v1", multi.image),
    );
  },
);

registryTest(
  "fromRegistry() sizes an incompressible gzip layer from its trailer (the blob is larger than the tar)",
  async (cleanup) => {
    // Random bytes: zlib stores them with up to ~0.03% overhead (deflateBound),
    // so the blob is a few KiB larger than the file it holds.
    // 16 MiB with no end-of-archive padding beyond the two zero blocks.
    const random = new Uint8Array(10240 * 1639 - 1536);
    for (let i = 0; i < random.length; i += 65536) {
      crypto.getRandomValues(random.subarray(i, i + 65536));
    }
    const built = await buildGzipImage({ files: [[["r.bin", random]]] });
    const layer = built.layers[0];
    assert.ok(layer.blob.length > random.length, "the bytes did not shrink");
    const registry = await startRegistry(cleanup);
    await pushImage(registry.url, "sizes/random", "v1", built.image);
    const image = await fromRegistry(`${registry.host}/sizes/random:v1`, FAST);
    assertSameBytes(
      await saved("sizes/r:v1", image),
      await saved("sizes/r:v1", built.image),
    );
  },
);

registryTest(
  "fromRegistry() fetches an allowed foreign layer from its urls without credentials",
  async (cleanup) => {
    const registry = await startRegistry(cleanup, {
      htpasswd: { username: USER, password: PASS },
    });
    const auth = `Basic ${btoa(`${USER}:${PASS}`)}`;
    const seen: (string | undefined)[] = [];
    let blob: Uint8Array = new Uint8Array();
    const cdn = await listen(cleanup, (req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-length": String(blob.length) });
      res.end(Buffer.from(blob));
    });
    const built = await buildGzipImage({
      mediaTypes: "docker",
      files: [[["a.txt", text("base\n")]], [["w.txt", text("foreign\n")]]],
      foreign: { index: 1, urls: [`${cdn.url}/layer.tar.gz`] },
    });
    blob = built.layers[1].blob;
    await pushImage(
      registry.url,
      "foreign/app",
      "v1",
      built.image,
      { authorization: auth },
      [built.layers[1].digest],
    );
    const reference = `${registry.host}/foreign/app:v1`;
    const credentials = {
      registry: registry.host,
      username: USER,
      password: PASS,
    };
    await assert.rejects(fromRegistry(reference, { ...FAST, credentials }), {
      name: "DockerSaveError",
      code: "FOREIGN_LAYER",
    });
    const image = await fromRegistry(reference, {
      ...FAST,
      credentials,
      allowForeignLayers: true,
    });
    assertSameBytes(
      await saved("foreign/app:v1", image),
      await saved("foreign/app:v1", built.image),
    );
    assert.ok(seen.length > 0);
    assert.deepEqual(seen.filter((a) => a !== undefined), []);
  },
);

registryTest(
  "fromRegistry() reads a docker config whose auths key is the bare host",
  async (cleanup) => {
    const registry = await startRegistry(cleanup, {
      htpasswd: { username: USER, password: PASS },
    });
    await pushLayout(LAYOUT, "basic", registry.url, "oracle/basic", "v1", {
      authorization: `Basic ${btoa(`${USER}:${PASS}`)}`,
    });
    const dir = await tempDir(cleanup, "docker-config");
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        auths: { [registry.host]: { username: USER, password: PASS } },
      }),
    );
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      dockerConfig: join(dir, "config.json"),
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
  },
);

registryTest(
  "saveResponse() serves a range of a registry image with a Range request for the blob",
  async (cleanup) => {
    const { registry, built, big } = await bigRegistry(cleanup);
    const proxy = await startProxy(cleanup, registry.url, () => undefined);
    const image = await fromRegistry(`${proxy.host}/big/app:v1`, FAST);
    const options = { layers: "compressed" } as const;
    const full = await saved("big/app:v1", built.image, options);
    const n = full.byteLength;
    // 1000 bytes from the middle of the big blob's member.
    const start = n - 10240 - Math.floor(big.blob.length / 2);
    const response = await saveResponse(
      new Request("http://127.0.0.1/", {
        headers: { range: `bytes=${start}-${start + 999}` },
      }),
      [["big/app:v1", image]],
      options,
    );
    assert.equal(response.status, 206);
    assertSameBytes(
      new Uint8Array(await response.arrayBuffer()),
      full.subarray(start, start + 1000),
    );
    const blobRequests = proxy.requests.filter((r) =>
      r.path.endsWith(big.digest)
    );
    assert.equal(blobRequests.length, 1);
    assert.match(blobRequests[0].range ?? "", /^bytes=\d+-$/);
    assert.ok(
      Number(blobRequests[0].range!.slice(6, -1)) > 0,
      "the blob is asked for from an offset",
    );
  },
);
