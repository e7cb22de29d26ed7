/**
 * A registry's rate limit, as Docker Hub answers it: 429 with
 * `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 0;w=21600`. The
 * error names the limit and suggests logging in or a mirror; a used-up
 * window (hours long) is not retried; a 429 with requests left is retried,
 * `Retry-After` honoured within `maxDelay`. Against a fake registry in the
 * test process.
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { DockerSaveError } from "../../src/model/errors.ts";
import { fromRegistry } from "../../src/sources/registry/pull.ts";
import { Cleanup } from "../_kit/cleanup.ts";
import { startFakeRegistry } from "../_kit/fake_registry.ts";

// Docker Hub's answer when the anonymous limit is used up.
const HUB_429 = {
  status: 429,
  headers: {
    "content-type": "application/json",
    "ratelimit-limit": "100;w=21600",
    "ratelimit-remaining": "0;w=21600",
    "docker-ratelimit-source": "192.0.2.1",
  },
  body: JSON.stringify({
    errors: [{
      code: "TOOMANYREQUESTS",
      message:
        "You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
    }],
  }),
};

async function fakeWith429(
  cleanup: Cleanup,
  headers: Record<string, string>,
) {
  return await startFakeRegistry(cleanup, {
    repository: "t/app",
    // Never served: every manifest request is answered 429.
    manifests: {},
    blobs: {},
    answer: (request) =>
      request.path.includes("/manifests/")
        ? { ...HUB_429, headers: { ...HUB_429.headers, ...headers } }
        : undefined,
  });
}

test("fromRegistry() names a used-up rate limit at once (RATE_LIMITED), suggesting login or a mirror, without retrying", async () => {
  const cleanup = new Cleanup();
  try {
    const registry = await fakeWith429(cleanup, {});
    const start = Date.now();
    await assert.rejects(
      fromRegistry(`${registry.host}/t/app:v1`, {
        dockerConfig: false,
        registriesConf: false,
        retry: { attempts: 5, delay: 2000, maxDelay: 10_000 },
      }),
      (error: unknown) => {
        assert.ok(error instanceof DockerSaveError, String(error));
        assert.equal(error.code, "RATE_LIMITED", error.message);
        assert.match(error.message, /0 of 100 requests left per 6 h/);
        assert.match(error.message, /TOOMANYREQUESTS/);
        assert.match(error.message, /log in/);
        assert.match(error.message, /mirror/);
        return true;
      },
    );
    assert.ok(Date.now() - start < 1900, `took ${Date.now() - start} ms`);
    const manifests = registry.requests.filter((r) =>
      r.path.includes("/manifests/")
    );
    assert.equal(manifests.length, 1);
  } finally {
    await cleanup.close();
  }
});

test("fromRegistry() retries a 429 with requests left, Retry-After within maxDelay, then says RATE_LIMITED", async () => {
  const cleanup = new Cleanup();
  try {
    const registry = await fakeWith429(cleanup, {
      "ratelimit-limit": "100;w=60",
      "ratelimit-remaining": "3;w=60",
      "retry-after": "3600",
    });
    const start = Date.now();
    await assert.rejects(
      fromRegistry(`${registry.host}/t/app:v1`, {
        dockerConfig: false,
        registriesConf: false,
        retry: { attempts: 2, delay: 1, maxDelay: 50 },
      }),
      (error: unknown) => {
        assert.ok(error instanceof DockerSaveError, String(error));
        assert.equal(error.code, "RATE_LIMITED", error.message);
        assert.match(error.message, /3 of 100 requests left per 1 min/);
        assert.match(error.message, /after 3 attempts/);
        return true;
      },
    );
    // Retry-After (an hour) was held to maxDelay (50 ms).
    assert.ok(Date.now() - start < 5000, `took ${Date.now() - start} ms`);
    const manifests = registry.requests.filter((r) =>
      r.path.includes("/manifests/")
    );
    assert.equal(manifests.length, 3);
  } finally {
    await cleanup.close();
  }
});
