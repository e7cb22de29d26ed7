/**
 * Mirrors: Debian's `docker-registry` in proxy mode (`proxy.remoteurl`), a
 * pull-through cache in front of another loopback registry, configured as
 * a registries.conf mirror and as a Docker Hub mirror (`registryMirrors`,
 * `--registry-mirror`). The mirror's access log shows the pull; with the
 * mirror stopped the registry answers; a mirror serving wrong bytes is an
 * error, not a fallback. (registries.conf parsing and prefix rules:
 * tests/unit/registries_conf.test.ts.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DockerSaveError } from "../../src/model/errors.ts";
import {
  fromRegistry,
  type MirrorAnswer,
} from "../../src/sources/registry/pull.ts";
import { assertSameBytes } from "../_kit/bytes.ts";
import { type Cleanup, tempDir } from "../_kit/cleanup.ts";
import { runCli } from "../_kit/processes.ts";
import {
  pushLayout,
  type Registry,
  registryTest,
  startProxy,
  startRegistry,
} from "../_kit/registry.ts";
import { basic, FAST, LAYOUT, saved } from "../_kit/registry_client.ts";

/** A registry holding oracle/basic:v1 and a pull-through mirror of it. */
async function upstreamAndMirror(
  cleanup: Cleanup,
): Promise<{ upstream: Registry; mirror: Registry }> {
  const upstream = await startRegistry(cleanup);
  await pushLayout(LAYOUT, "basic", upstream.url, "oracle/basic", "v1");
  const mirror = await startRegistry(cleanup, undefined, {
    remoteurl: upstream.url,
    accessLog: true,
  });
  return { upstream, mirror };
}

registryTest(
  "a registries.conf mirror (docker-registry as a pull-through cache) serves the pull; stopped, the registry answers",
  async (cleanup) => {
    const { upstream, mirror } = await upstreamAndMirror(cleanup);
    const dir = await tempDir(cleanup, "conf");
    const conf = join(dir, "registries.conf");
    await writeFile(
      conf,
      `[[registry]]
prefix = "${upstream.host}"
[[registry.mirror]]
location = "${mirror.host}"
`,
    );
    const answers: MirrorAnswer[] = [];
    const options = {
      ...FAST,
      registriesConf: conf,
      onMirror: (answer: MirrorAnswer) => answers.push(answer),
    };
    const image = await fromRegistry(
      `${upstream.host}/oracle/basic:v1`,
      options,
    );
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.equal(
      image.reference.split("@")[0],
      `${upstream.host}/oracle/basic`,
    );
    assert.deepEqual(answers, [{
      reference: `${upstream.host}/oracle/basic:v1`,
      servedBy: mirror.host,
      mirror: true,
      failures: [],
    }]);
    assert.match(mirror.log(), /uri="?\/v2\/oracle\/basic\/manifests\/v1/);
    assert.match(mirror.log(), /uri="?\/v2\/oracle\/basic\/blobs\/sha256:/);

    await mirror.stop();
    const fallback = await fromRegistry(
      `${upstream.host}/oracle/basic:v1`,
      options,
    );
    assertSameBytes(await saved("oracle/basic:v1", fallback), basic.expected);
    assert.equal(answers[1].servedBy, upstream.host);
    assert.equal(answers[1].mirror, false);
    assert.equal(answers[1].failures.length, 1);
    assert.match(answers[1].failures[0], new RegExp(`^${mirror.host}: `));
  },
);

registryTest(
  "a Docker Hub mirror (registryMirrors) serves docker.io images; stopped, Docker Hub answers",
  async (cleanup) => {
    const { upstream, mirror } = await upstreamAndMirror(cleanup);
    // Docker Hub itself is the upstream registry here, reached by a fetch
    // that sends registry-1.docker.io's requests to it.
    const hubRequests: string[] = [];
    const hub: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input);
      if (url.host === "registry-1.docker.io") {
        hubRequests.push(url.pathname);
        return fetch(new URL(url.pathname + url.search, upstream.url), init);
      }
      return fetch(input, init);
    };
    const answers: MirrorAnswer[] = [];
    const options = {
      ...FAST,
      fetch: hub,
      registriesConf: false as const,
      registryMirrors: [mirror.host],
      onMirror: (answer: MirrorAnswer) => answers.push(answer),
    };
    const image = await fromRegistry("oracle/basic:v1", options);
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.equal(answers[0].servedBy, mirror.host);
    assert.equal(hubRequests.length, 0);
    assert.match(mirror.log(), /uri="?\/v2\/oracle\/basic\/manifests\/v1/);

    await mirror.stop();
    const fallback = await fromRegistry("oracle/basic:v1", options);
    assertSameBytes(await saved("oracle/basic:v1", fallback), basic.expected);
    assert.equal(answers[1].servedBy, "docker.io");
    assert.ok(hubRequests.includes("/v2/oracle/basic/manifests/v1"));
  },
);

registryTest(
  "a mirror serving other bytes for a digest fails the pull (DIGEST_MISMATCH), no fallback",
  async (cleanup) => {
    const upstream = await startRegistry(cleanup);
    const digest = await pushLayout(
      LAYOUT,
      "basic",
      upstream.url,
      "oracle/basic",
      "v1",
    );
    const bad = await startProxy(
      cleanup,
      upstream.url,
      (request) =>
        request.path.includes("/manifests/") ? { corruptAt: 10 } : undefined,
    );
    const dir = await tempDir(cleanup, "conf");
    const conf = join(dir, "registries.conf");
    await writeFile(
      conf,
      `[[registry]]\nprefix = "${upstream.host}"\n[[registry.mirror]]\nlocation = "${bad.host}"\n`,
    );
    await assert.rejects(
      fromRegistry(`${upstream.host}/oracle/basic@${digest}`, {
        ...FAST,
        registriesConf: conf,
      }),
      (e) => e instanceof DockerSaveError && e.code === "DIGEST_MISMATCH",
    );
  },
);

registryTest(
  "the CLI takes --registry-mirror and says which endpoint answered",
  async (cleanup) => {
    const { mirror } = await upstreamAndMirror(cleanup);
    const out = await tempDir(cleanup, "out");
    const none = join(out, "registries.conf");
    await writeFile(none, "");
    const run = await runCli([
      "--registry-mirror",
      mirror.host,
      "--registries-conf",
      none,
      "-o",
      join(out, "a.tar"),
      "oracle/basic:v1",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`docker-save: oracle/basic:v1 from mirror ${mirror.host}\\n`),
    );
    assertSameBytes(
      new Uint8Array(readFileSync(join(out, "a.tar"))),
      basic.expected,
    );
  },
);
