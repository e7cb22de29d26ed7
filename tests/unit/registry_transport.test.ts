/**
 * The registry transport (src/sources/registry/transport.ts) on its own,
 * against small HTTP servers in this process on 127.0.0.1 and the runtime's
 * real `fetch`: redirects followed by hand (credentials only to the first
 * origin, at most 10, 303 and POST redirects become GETs, only http(s)
 * targets), the retry loop (408, 429, 5xx and network errors, `Retry-After`
 * capped, 501 not retried, cancel stops it), the header timeout, bodies read
 * within a size cap and a time limit, and the errors statuses map to.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { DockerSaveError } from "../../src/model/errors.ts";
import { Exchange } from "../../src/sources/registry/transport.ts";
import { type Cleanup, withCleanup } from "../_kit/cleanup.ts";
import { freePort, listen } from "../_kit/http.ts";
import { fastTransport } from "../_kit/registry_client.ts";

/** A request as a test server saw it. */
interface Seen {
  method: string;
  path: string;
  authorization?: string;
  body: string;
}

type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  seen: Seen,
  index: number,
) => void;

/** A loopback server that records every request (with its body). */
async function server(cleanup: Cleanup, handler: Handler) {
  const requests: Seen[] = [];
  const { url } = await listen(cleanup, (req, res) => {
    let body = "";
    req.on("data", (chunk) => body += String(chunk));
    req.on("end", () => {
      const seen: Seen = {
        method: req.method ?? "GET",
        path: req.url ?? "/",
        authorization: req.headers.authorization,
        body,
      };
      requests.push(seen);
      handler(req, res, seen, requests.length - 1);
    });
  });
  return { url, requests };
}

const transport = fastTransport;

/** Asserts `promise` rejects with a `DockerSaveError` of `code`. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  message: RegExp,
): Promise<DockerSaveError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail("expected a DockerSaveError"),
    (error) => caught = error,
  );
  assert.ok(caught instanceof DockerSaveError, String(caught));
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, message);
  return caught;
}

const redirect = (res: ServerResponse, location: string, status = 307) => {
  res.writeHead(status, { location });
  res.end();
};

const ok = (res: ServerResponse, body = "ok") => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end(body);
};

withCleanup(
  "send() returns the response and sends Authorization to its origin",
  async (cleanup) => {
    const registry = await server(cleanup, (_req, res) => ok(res, "hello"));
    const t = transport();
    const exchange = new Exchange();
    const { response, sameOrigin } = await t.send(
      new URL(`${registry.url}/v2/`),
      { headers: { accept: "x/y" }, authorization: "Bearer abc" },
      exchange,
    );
    assert.equal(response.status, 200);
    assert.equal(sameOrigin, true);
    assert.equal(await response.text(), "hello");
    assert.deepEqual(registry.requests.map((r) => r.authorization), [
      "Bearer abc",
    ]);
  },
);

withCleanup(
  "send() follows a redirect on the same origin with Authorization",
  async (cleanup) => {
    const registry = await server(
      cleanup,
      (req, res) => req.url === "/a" ? redirect(res, "/b") : ok(res),
    );
    const { response, sameOrigin } = await transport().send(
      new URL(`${registry.url}/a`),
      { authorization: "Bearer abc" },
      new Exchange(),
    );
    assert.equal(response.status, 200);
    assert.equal(sameOrigin, true);
    assert.deepEqual(
      registry.requests.map((r) => [r.path, r.authorization]),
      [["/a", "Bearer abc"], ["/b", "Bearer abc"]],
    );
  },
);

withCleanup(
  "send() drops Authorization once a redirect leaves the origin, also on the way back",
  async (cleanup) => {
    const home = await server(
      cleanup,
      (req, res) =>
        req.url === "/start"
          ? redirect(res, `${storage.url}/blob`)
          : ok(res, "back home"),
    );
    const storage = await server(
      cleanup,
      (_req, res) => redirect(res, `${home.url}/end`),
    );
    const { response, sameOrigin } = await transport().send(
      new URL(`${home.url}/start`),
      { authorization: "Bearer secret" },
      new Exchange(),
    );
    assert.equal(await response.text(), "back home");
    // Back on the first origin, but only after leaving it: not trusted again.
    assert.equal(sameOrigin, false);
    assert.deepEqual(
      home.requests.map((r) => [r.path, r.authorization]),
      [["/start", "Bearer secret"], ["/end", undefined]],
    );
    assert.deepEqual(storage.requests.map((r) => r.authorization), [undefined]);
  },
);

withCleanup(
  "send() follows 10 redirects and refuses the 11th",
  async (cleanup) => {
    // /hops/N redirects N more times, then answers 200.
    const registry = await server(cleanup, (req, res) => {
      const left = Number(req.url!.split("/")[2]);
      if (left === 0) ok(res);
      else redirect(res, `/hops/${left - 1}`, 302);
    });
    const t = transport();
    const { response } = await t.send(
      new URL(`${registry.url}/hops/10`),
      {},
      new Exchange(),
    );
    assert.equal(response.status, 200);
    assert.equal(registry.requests.length, 11);
    registry.requests.length = 0;
    await rejectsWith(
      t.send(new URL(`${registry.url}/hops/11`), {}, new Exchange()),
      "REGISTRY_ERROR",
      /more than 10 redirects/,
    );
    assert.equal(registry.requests.length, 11);
  },
);

withCleanup(
  "send() turns a POST into a GET on 303 and 302, keeps it on 307",
  async (cleanup) => {
    const registry = await server(cleanup, (req, res) => {
      if (req.url === "/303") redirect(res, "/landed", 303);
      else if (req.url === "/302") redirect(res, "/landed", 302);
      else if (req.url === "/307") redirect(res, "/landed", 307);
      else ok(res);
    });
    const t = transport();
    for (const status of ["303", "302", "307"]) {
      registry.requests.length = 0;
      await t.send(
        new URL(`${registry.url}/${status}`),
        { method: "POST", body: new URLSearchParams({ grant_type: "x" }) },
        new Exchange(),
      );
      const landed = registry.requests[1];
      assert.equal(landed.path, "/landed");
      if (status === "307") {
        assert.equal(landed.method, "POST");
        assert.equal(landed.body, "grant_type=x");
      } else {
        assert.equal(landed.method, "GET", status);
        assert.equal(landed.body, "", status);
      }
    }
  },
);

withCleanup(
  "send() refuses a redirect to file: or to http: of a secure registry, before fetching it",
  async (cleanup) => {
    const registry = await server(
      cleanup,
      (req, res) =>
        req.url === "/file"
          ? redirect(res, "file:///etc/passwd")
          : redirect(res, "http://127.0.0.1:1/v2/"),
    );
    await rejectsWith(
      transport().send(new URL(`${registry.url}/file`), {}, new Exchange()),
      "BAD_URL",
      /only http: and https: URLs are fetched/,
    );
    // A secure registry (allowHttp false) never fetches http:, not even first.
    const secure = transport({ allowHttp: false });
    await rejectsWith(
      secure.send(new URL(`${registry.url}/http`), {}, new Exchange()),
      "BAD_URL",
      /plain http is allowed only for an insecure registry/,
    );
    assert.deepEqual(registry.requests.map((r) => r.path), ["/file"]);
    assert.equal(secure.allows("https://ghcr.io/v2/"), true);
    assert.equal(secure.allows("http://ghcr.io/v2/"), false);
    assert.equal(transport().allows("http://ghcr.io/v2/"), true);
    assert.equal(transport().allows("file:///etc/passwd"), false);
    assert.equal(transport().allows("not a url"), false);
  },
);

withCleanup(
  "retry() retries 503, 429 and 408, then returns the answer",
  async (cleanup) => {
    const statuses = [503, 429, 408];
    const registry = await server(cleanup, (_req, res, _seen, i) => {
      if (i < statuses.length) {
        res.writeHead(statuses[i]);
        res.end("busy");
      } else ok(res, "done");
    });
    const t = transport({ attempts: 3 });
    const exchange = new Exchange();
    const { response } = await t.retry(
      "the API root",
      exchange,
      () => t.send(new URL(`${registry.url}/v2/`), {}, exchange),
    );
    assert.equal(await response.text(), "done");
    assert.equal(registry.requests.length, 4);
  },
);

withCleanup(
  "retry() gives up after `attempts` retries with the registry's error, quoted and escaped",
  async (cleanup) => {
    const errors = [
      { code: "UNAVAILABLE", message: "down\u001b[2J for maintenance" },
      { code: "A", message: "a" },
      { code: "B", message: "b" },
      { code: "C", message: "c" },
    ];
    const registry = await server(cleanup, (_req, res) => {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors }));
    });
    const t = transport({ attempts: 2 });
    const exchange = new Exchange();
    const error = await rejectsWith(
      t.retry(
        "manifest of app:v1",
        exchange,
        () => t.send(new URL(`${registry.url}/v2/`), {}, exchange),
      ),
      "REGISTRY_ERROR",
      /^Cannot fetch manifest of app:v1: the registry answered status 503, UNAVAILABLE: down\\x1b\[2J for maintenance; A: a; B: b; … \(4 errors\) after 3 attempts$/,
    );
    assert.ok(!error.message.includes("\u001b"));
    assert.equal(registry.requests.length, 3);
  },
);

withCleanup(
  "retry() does not retry 501, 404 or 401: send() returns them",
  async (cleanup) => {
    const registry = await server(cleanup, (req, res) => {
      res.writeHead(Number(req.url!.slice(1)));
      res.end();
    });
    const t = transport({ attempts: 5 });
    for (const status of [501, 404, 401]) {
      registry.requests.length = 0;
      const exchange = new Exchange();
      const { response } = await t.retry(
        "x",
        exchange,
        () => t.send(new URL(`${registry.url}/${status}`), {}, exchange),
      );
      assert.equal(response.status, status);
      assert.equal(registry.requests.length, 1, String(status));
    }
  },
);

withCleanup(
  "retry() waits what Retry-After asks, at most maxDelay",
  async (cleanup) => {
    const registry = await server(cleanup, (_req, res, _seen, i) => {
      if (i === 0) {
        res.writeHead(429, { "retry-after": "3600" });
        res.end();
      } else ok(res);
    });
    const t = transport({ attempts: 1, maxDelay: 50 });
    const exchange = new Exchange();
    const started = Date.now();
    const { response } = await t.retry(
      "x",
      exchange,
      () => t.send(new URL(`${registry.url}/`), {}, exchange),
    );
    assert.equal(response.status, 200);
    assert.ok(Date.now() - started < 5_000, "waited for Retry-After: 3600");
  },
);

test("retry() does not retry a refused connection, and names the host", async () => {
  const port = await freePort(); // closed again: connections are refused
  const t = transport({ attempts: 2 });
  const exchange = new Exchange();
  let calls = 0;
  await rejectsWith(
    t.retry("the API root", exchange, () => {
      calls++;
      return t.send(new URL(`http://127.0.0.1:${port}/v2/`), {}, exchange);
    }),
    "REGISTRY_ERROR",
    new RegExp(
      `^Cannot fetch the API root: 127\\.0\\.0\\.1:${port} refused the connection`,
    ),
  );
  assert.equal(calls, 1);
});

withCleanup(
  "retry() retries a connection closed before the answer",
  async (cleanup) => {
    const registry = await server(cleanup, (req, res, _seen, i) => {
      if (i === 0) req.socket.destroy();
      else ok(res, "second time");
    });
    const t = transport({ attempts: 1 });
    const exchange = new Exchange();
    const { response } = await t.retry(
      "x",
      exchange,
      () => t.send(new URL(`${registry.url}/`), {}, exchange),
    );
    assert.equal(await response.text(), "second time");
    assert.equal(registry.requests.length, 2);
  },
);

withCleanup(
  "send() gives up on headers after `timeout`; retry() then tries again",
  async (cleanup) => {
    // The first request never gets an answer; the second does.
    const registry = await server(cleanup, (_req, res, _seen, i) => {
      if (i > 0) ok(res, "late");
    });
    const t = transport({ attempts: 1, timeout: 300 });
    const exchange = new Exchange();
    const { response } = await t.retry(
      "x",
      exchange,
      () => t.send(new URL(`${registry.url}/`), {}, exchange),
    );
    assert.equal(await response.text(), "late");
    assert.equal(registry.requests.length, 2);
  },
);

withCleanup(
  "a cancelled exchange sends nothing and is not retried",
  async (cleanup) => {
    const registry = await server(cleanup, (_req, res) => {
      res.writeHead(503);
      res.end();
    });
    const t = transport({ attempts: 5 });
    const exchange = new Exchange();
    exchange.cancel();
    await assert.rejects(
      t.send(new URL(`${registry.url}/`), {}, exchange),
      /cancelled/,
    );
    let calls = 0;
    const live = new Exchange();
    await assert.rejects(
      t.retry("x", live, async () => {
        calls++;
        try {
          return await t.send(new URL(`${registry.url}/`), {}, live);
        } finally {
          live.cancel(); // the caller gives up while the 503 comes back
        }
      }),
    );
    assert.equal(calls, 1);
    assert.equal(registry.requests.length, 1);
  },
);

withCleanup(
  "read() returns a body within its cap and refuses one byte more",
  async (cleanup) => {
    const body = "x".repeat(1000);
    const registry = await server(cleanup, (_req, res) => ok(res, body));
    const t = transport();
    for (const [limit, fits] of [[1000, true], [999, false]] as const) {
      const exchange = new Exchange();
      const { response } = await t.send(
        new URL(`${registry.url}/`),
        {},
        exchange,
      );
      const reading = t.read(response, limit, exchange, "the config");
      if (fits) {
        assert.equal(new TextDecoder().decode(await reading), body);
      } else {
        await rejectsWith(
          reading,
          "REGISTRY_ERROR",
          /^Cannot fetch the config: it is larger than 999 bytes$/,
        );
      }
    }
  },
);

withCleanup(
  "read() ends a stalled body and a dripped one after `timeout` in all",
  async (cleanup) => {
    const registry = await server(cleanup, (req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("x");
      if (req.url !== "/drip") return; // stalled: never another byte
      const timer = setInterval(() => res.write("x"), 50);
      res.on("close", () => clearInterval(timer));
    });
    const t = transport({ timeout: 400 });
    for (
      const [path, message] of [
        ["/stall", /no data for \d+ ms|not read in 400 ms/],
        ["/drip", /not read in 400 ms/],
      ] as const
    ) {
      const exchange = new Exchange();
      const { response } = await t.send(
        new URL(`${registry.url}${path}`),
        {},
        exchange,
      );
      const started = Date.now();
      await assert.rejects(
        t.read(response, 1 << 20, exchange, "x"),
        (error: Error) => {
          assert.ok(!(error instanceof DockerSaveError), "a retryable error");
          assert.match(error.message, message);
          return true;
        },
      );
      assert.ok(Date.now() - started < 3_000, `${path}: took too long`);
    }
  },
);

withCleanup(
  "statusError() maps 404, 401, 403 and others to their codes",
  async (cleanup) => {
    const registry = await server(cleanup, (req, res) => {
      res.writeHead(Number(req.url!.slice(1)), {
        "content-type": "application/json",
      });
      res.end(JSON.stringify({ errors: [{ code: "X", message: "why" }] }));
    });
    const t = transport();
    const target = {
      what: "blob sha256:ab",
      notFound: "BLOB_NOT_FOUND",
    } as const;
    const cases = [
      [404, "BLOB_NOT_FOUND", "not found (status 404, X: why)"],
      [401, "UNAUTHORIZED", "access denied (status 401, X: why)"],
      [403, "UNAUTHORIZED", "access denied (status 403, X: why)"],
      [400, "REGISTRY_ERROR", "the registry answered status 400, X: why"],
    ] as const;
    for (const [status, code, reason] of cases) {
      const exchange = new Exchange();
      const { response } = await t.send(
        new URL(`${registry.url}/${status}`),
        {},
        exchange,
      );
      const error = await t.statusError(response, target, exchange);
      assert.equal(error.code, code);
      assert.equal(error.message, `Cannot fetch blob sha256:ab: ${reason}`);
    }
  },
);

withCleanup(
  "statusError() reads at most 64 kB of an error body",
  async (cleanup) => {
    // A 64 MiB error body: the message comes without reading it all.
    let closed!: (sent: number) => void;
    const sentAtClose = new Promise<number>((resolve) => closed = resolve);
    const registry = await server(cleanup, (_req, res) => {
      res.writeHead(500, { "content-type": "application/json" });
      const chunk = " ".repeat(64 * 1024);
      let sent = 0;
      res.on("close", () => closed(sent));
      const more = () => {
        while (sent < 1024) {
          sent++;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    const t = transport({ attempts: 0 });
    const exchange = new Exchange();
    await rejectsWith(
      t.retry(
        "x",
        exchange,
        () => t.send(new URL(`${registry.url}/`), {}, exchange),
      ),
      "REGISTRY_ERROR",
      /^Cannot fetch x: the registry answered status 500$/,
    );
    // What the server got out before the client hung up: socket buffers, not
    // the 64 MiB.
    assert.ok(await sentAtClose < 256, "the whole error body was read");
  },
);
