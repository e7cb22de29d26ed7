/**
 * Which proxy a registry request goes through (`proxyFor`): the option,
 * `HTTPS_PROXY`/`HTTP_PROXY` (upper case first), `NO_PROXY` as Go reads it
 * (`*`, domains, `.domains`, `host:port`, IPs, CIDR), loopback included.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { DockerSaveError } from "../../src/model/errors.ts";
import { proxyFor } from "../../src/sources/registry/proxy.ts";

test("proxyFor() reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY as Go does, loopback included", () => {
  const env = {
    HTTPS_PROXY: "http://proxy:3128",
    http_proxy: "proxy:8080",
    NO_PROXY: "registry.lan, .corp.example,10.0.0.0/8 ,[::1]:5000,host:444",
  };
  const via = (url: string, more = {}) =>
    proxyFor(new URL(url), { env, ...more });
  assert.equal(via("https://ghcr.io/v2/"), "http://proxy:3128/");
  assert.equal(via("http://ghcr.io/v2/"), "http://proxy:8080/");
  assert.equal(via("https://127.0.0.1:5000/v2/"), "http://proxy:3128/");
  assert.equal(via("https://registry.lan/v2/"), undefined);
  assert.equal(via("https://a.registry.lan/v2/"), undefined);
  assert.equal(via("https://xregistry.lan/v2/"), "http://proxy:3128/");
  assert.equal(via("https://corp.example/v2/"), "http://proxy:3128/");
  assert.equal(via("https://a.corp.example/v2/"), undefined);
  assert.equal(via("https://10.1.2.3/v2/"), undefined);
  assert.equal(via("https://11.1.2.3/v2/"), "http://proxy:3128/");
  assert.equal(via("https://[::1]:5000/v2/"), undefined);
  assert.equal(via("https://[::1]:5001/v2/"), "http://proxy:3128/");
  assert.equal(via("https://host:444/v2/"), undefined);
  assert.equal(via("https://host/v2/"), "http://proxy:3128/");
  assert.equal(
    via("https://ghcr.io/v2/", { proxy: "http://other:1" }),
    "http://other:1/",
  );
  assert.equal(
    via("https://registry.lan/v2/", { proxy: "http://other:1" }),
    undefined,
  );
  assert.equal(via("https://ghcr.io/v2/", { proxy: false }), undefined);
  assert.equal(
    proxyFor(new URL("https://ghcr.io/v2/"), {
      env: { https_proxy: "http://lower:1", NO_PROXY: "*" },
    }),
    undefined,
  );
  assert.throws(
    () =>
      proxyFor(new URL("https://ghcr.io/"), {
        env: { HTTPS_PROXY: "socks5://p:1" },
      }),
    (e) => e instanceof DockerSaveError && e.code === "BAD_URL",
  );
});
