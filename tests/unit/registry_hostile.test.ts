/**
 * `fromRegistry()` against hostile registries (issue "Hostile registries and
 * archives"): only http(s) URLs are fetched, http only for registries allowed
 * insecure; credentials never cross a downgrade; error and token bodies are
 * bounded in size and time; remote text in messages is escaped and cut;
 * digests from an index are checked before they reach a URL path.
 *
 * Loopback servers use the runtime's real `fetch` (Deno's and Bun's fetch
 * `file:` URLs, Node's does not); the rest use an injected `fetch`.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MEDIA_TYPES } from "../../src/model/image.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { assertSameBytes, json, text } from "../_kit/bytes.ts";
import { type Cleanup, tempDir, withCleanup } from "../_kit/cleanup.ts";
import { fakeFetch, serveBuilt } from "../_kit/fake_registry.ts";
import { listen } from "../_kit/http.ts";
import { buildGzipImage } from "../_kit/images.ts";
import { FAST, PASS, saved, USER } from "../_kit/registry_client.ts";

/** A file whose content must never leave this process. */
async function secretFile(cleanup: Cleanup) {
  const dir = await tempDir(cleanup, "secret");
  const content = `SECRET-${crypto.randomUUID()}`;
  const path = join(dir, "secret.txt");
  await writeFile(path, content);
  return { path, content, url: `file://${path}` };
}

/** Rejects if `promise` has not settled within `ms` (a hang, not an error). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`still pending after ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

// ------------------------------------------------------------ 1. URL schemes

withCleanup(
  "fromRegistry() never fetches a file: Bearer realm",
  async (cleanup) => {
    const secret = await secretFile(cleanup);
    const authorizations: string[] = [];
    const server = await listen(cleanup, (req, res) => {
      authorizations.push(req.headers.authorization ?? "");
      res.writeHead(401, {
        "www-authenticate": `Bearer realm="${secret.url}",service="s"`,
      });
      res.end();
    });
    await assert.rejects(
      fromRegistry(`${server.host}/team/app:v1`, FAST),
      (error: Error & { code?: string }) => {
        assert.equal(error.name, "DockerSaveError");
        assert.equal(error.code, "BAD_URL", error.message);
        assert.ok(!error.message.includes(secret.content), error.message);
        return true;
      },
    );
    assert.ok(
      authorizations.every((a) => !a.includes(secret.content)),
      "the file was sent as a token",
    );
  },
);

withCleanup(
  "fromRegistry() never follows a redirect to a file: URL",
  async (cleanup) => {
    const secret = await secretFile(cleanup);
    const server = await listen(cleanup, (_req, res) => {
      res.writeHead(307, { location: secret.url });
      res.end();
    });
    await assert.rejects(
      fromRegistry(`${server.host}/team/app:v1`, FAST),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "BAD_URL", error.message);
        assert.ok(!error.message.includes(secret.content), error.message);
        return true;
      },
    );
  },
);

test("fromRegistry() refuses a redirect or a token realm over http: for a registry not allowed insecure", async () => {
  const redirect = fakeFetch((url) =>
    url.protocol === "https:"
      ? new Response(null, {
        status: 307,
        headers: { location: `http://${url.host}${url.pathname}` },
      })
      : new Response("{}", { status: 404 })
  );
  await assert.rejects(
    fromRegistry("registry.example.com/app:v1", {
      ...FAST,
      fetch: redirect.fetch,
    }),
    { name: "DockerSaveError", code: "BAD_URL" },
  );
  assert.deepEqual(
    redirect.log.filter((entry) => !entry.url.startsWith("https:")),
    [],
  );

  const realm = fakeFetch((url) =>
    url.host === "registry.example.com"
      ? new Response("", {
        status: 401,
        headers: {
          "www-authenticate":
            'Bearer realm="http://auth.example.com/token",service="r"',
        },
      })
      : new Response(JSON.stringify({ token: "t" }))
  );
  await assert.rejects(
    fromRegistry("registry.example.com/app:v1", {
      ...FAST,
      fetch: realm.fetch,
    }),
    { name: "DockerSaveError", code: "BAD_URL" },
  );
  assert.deepEqual(
    realm.log.filter((entry) => !entry.url.startsWith("https:")),
    [],
  );
});

test("fromRegistry() fetches a foreign layer only from https: urls of a secure registry, else from the registry", async () => {
  const built = await buildGzipImage({
    files: [[["a.txt", text("base\n")]], [["b.txt", text("foreign\n")]]],
    foreign: {
      index: 1,
      urls: ["file:///etc/hostname", "http://cdn.example.net/layer.tar.gz"],
    },
  });
  const { fetch, log } = fakeFetch((url) =>
    url.host === "registry.example.com"
      ? serveBuilt(built, url)
      : new Response(built.layers[1].blob as Uint8Array<ArrayBuffer>)
  );
  const image = await fromRegistry("registry.example.com/app:v1", {
    ...FAST,
    fetch,
    allowForeignLayers: true,
  });
  assertSameBytes(
    await saved("app:v1", image),
    await saved("app:v1", built.image),
  );
  assert.deepEqual(
    log.map((entry) => entry.url).filter((url) => !url.startsWith("https:")),
    [],
  );
});

// ---------------------------------------------------- 2. credentials' host

test("fromRegistry() never sends credentials over a redirect from https: to http:, even for an insecure registry", async () => {
  const basicAuth = `Basic ${btoa(`${USER}:${PASS}`)}`;
  const { fetch, log } = fakeFetch((url, headers) => {
    if (url.host === "auth.example.com") {
      return url.protocol === "https:"
        ? new Response(null, {
          status: 307,
          headers: { location: `http://auth.example.com/token${url.search}` },
        })
        : new Response(JSON.stringify({ token: "tok" }));
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
    return new Response("{}", { status: 404 });
  });
  await assert.rejects(
    fromRegistry("registry.example.com/team/app:v1", {
      ...FAST,
      fetch,
      insecure: ["registry.example.com"],
      credentials: {
        registry: "registry.example.com",
        username: USER,
        password: PASS,
      },
    }),
    { name: "DockerSaveError", code: "MANIFEST_NOT_FOUND" },
  );
  const https = log.find((entry) => entry.url.startsWith("https://auth."));
  assert.equal(https?.headers.get("authorization"), basicAuth);
  const http = log.filter((entry) => entry.url.startsWith("http://auth."));
  assert.equal(http.length, 1);
  assert.equal(http[0].headers.get("authorization"), null);
});

// ------------------------------------------------ 6. bounded, timed bodies

withCleanup(
  "fromRegistry() does not wait past its timeout for a stalled error body",
  async (cleanup) => {
    const server = await listen(cleanup, (_req, res) => {
      res.writeHead(404, {
        "content-type": "application/json",
        "content-length": "1000",
      });
      res.write('{"errors":[');
      // ... and nothing more.
    });
    const started = Date.now();
    await within(
      assert.rejects(
        fromRegistry(`${server.host}/team/app:v1`, { ...FAST, timeout: 300 }),
        { name: "DockerSaveError", code: "MANIFEST_NOT_FOUND" },
      ),
      10_000,
    );
    assert.ok(Date.now() - started < 5_000, `${Date.now() - started} ms`);
  },
);

/**
 * A server that answers every request with `status` and a body of `total`
 * bytes written as fast as the client reads; `sent()` is how many bytes it
 * wrote before the client went away or it finished.
 */
async function hugeBody(
  cleanup: Cleanup,
  total: number,
  route: (path: string) => { status: number; prefix: string } | undefined,
) {
  let sent = 0;
  const server = await listen(cleanup, (req, res) => {
    const answer = route(req.url ?? "/");
    if (!answer) {
      res.writeHead(401, {
        "www-authenticate": `Bearer realm="http://${req.headers.host}/token"`,
      });
      res.end();
      return;
    }
    res.writeHead(answer.status, { "content-type": "application/json" });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let closed = false;
    res.on("close", () => closed = true);
    res.write(answer.prefix);
    const pump = () => {
      while (!closed && sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
      if (!closed) res.end('"}');
    };
    pump();
  });
  return { server, sent: () => sent };
}

withCleanup(
  "fromRegistry() reads a bounded part of a huge error body",
  async (cleanup) => {
    const total = 64 << 20;
    const { server, sent } = await hugeBody(
      cleanup,
      total,
      () => ({ status: 404, prefix: '{"errors":[{"message":"' }),
    );
    await assert.rejects(
      fromRegistry(`${server.host}/team/app:v1`, FAST),
      { name: "DockerSaveError", code: "MANIFEST_NOT_FOUND" },
    );
    assert.ok(sent() < 16 << 20, `${sent()} bytes of ${total} were read`);
  },
);

withCleanup(
  "fromRegistry() refuses a huge token response with a DockerSaveError",
  async (cleanup) => {
    const total = 64 << 20;
    const { server, sent } = await hugeBody(
      cleanup,
      total,
      (path) =>
        path.startsWith("/token")
          ? { status: 200, prefix: '{"token":"' }
          : undefined,
    );
    await assert.rejects(
      fromRegistry(`${server.host}/team/app:v1`, FAST),
      {
        name: "DockerSaveError",
        code: "REGISTRY_ERROR",
        message: /larger than 1048576 bytes/,
      },
    );
    assert.ok(sent() < 16 << 20, `${sent()} bytes of ${total} were read`);
  },
);

withCleanup(
  "fromRegistry() does not wait past its timeout for a stalled token response",
  async (cleanup) => {
    const server = await listen(cleanup, (req, res) => {
      if (req.url?.startsWith("/token")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"token":"');
        return;
      }
      res.writeHead(401, {
        "www-authenticate": `Bearer realm="http://${req.headers.host}/token"`,
      });
      res.end();
    });
    const started = Date.now();
    await within(
      assert.rejects(
        fromRegistry(`${server.host}/team/app:v1`, {
          ...FAST,
          timeout: 300,
          retry: { attempts: 1, delay: 1 },
        }),
        { name: "DockerSaveError", code: "REGISTRY_ERROR" },
      ),
      10_000,
    );
    assert.ok(Date.now() - started < 5_000, `${Date.now() - started} ms`);
  },
);

// ------------------------------------------------- 9. remote text as data

test("fromRegistry() escapes control characters of a registry's error message and cuts it short", async () => {
  const hostile = "\u001b]52;c;SGVsbG8=\u0007\r\u001b[2Kdone\u009b" +
    "x".repeat(3000);
  const { fetch } = fakeFetch(() =>
    new Response(
      JSON.stringify({
        errors: [{ code: "MANIFEST_UNKNOWN", message: hostile }],
      }),
      { status: 404 },
    )
  );
  await assert.rejects(
    fromRegistry("registry.example.com/app:v1", { ...FAST, fetch }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, "MANIFEST_NOT_FOUND");
      assert.ok(!CONTROL.test(error.message), JSON.stringify(error.message));
      assert.match(error.message, /MANIFEST_UNKNOWN: \\x1b\]52;c;/);
      assert.ok(error.message.length < 600, `${error.message.length} chars`);
      return true;
    },
  );
});

// ------------------------------------------- 11. digests from an index

test("fromRegistry() refuses index entries whose digest is not sha256 with 64 hex digits, before fetching them", async () => {
  for (
    const digest of [
      "sha256:../../../../v2/other/app/manifests/latest",
      `sha512:${"ab".repeat(64)}`,
      `sha256:${"A".repeat(64)}`,
    ]
  ) {
    const index = json({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [{
        mediaType: MEDIA_TYPES.ociManifest,
        digest,
        size: 100,
        platform: { os: "linux", architecture: "amd64" },
      }],
    });
    const { fetch, log } = fakeFetch((url) =>
      url.pathname.endsWith("/manifests/v1")
        ? new Response(index as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": MEDIA_TYPES.ociIndex },
        })
        : new Response("{}", { status: 404 })
    );
    await assert.rejects(
      fromRegistry("registry.example.com/app:v1", { ...FAST, fetch }),
      { name: "DockerSaveError", code: "BAD_DIGEST" },
      digest,
    );
    assert.deepEqual(
      log.map((entry) => new URL(entry.url).pathname),
      ["/v2/app/manifests/v1"],
      digest,
    );
  }
});
