/**
 * Credentials bound to their registry host, and found where docker keeps
 * them: the option's three forms, a docker config's `auths`, `credHelpers`
 * and `credsStore` (fake `docker-credential-*` scripts on `PATH` that log
 * what they were asked), identity tokens through the OAuth2 refresh-token
 * grant and its GET fallback; against Debian's registry with htpasswd and
 * token auth.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { save } from "../../src/save/save.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import {
  fromRegistry,
  type FromRegistryOptions,
} from "../../src/sources/registry/pull.ts";
import { dockerConfigCredentials } from "../../src/sources/registry/docker_config.ts";
import { RegistryClient } from "../../src/sources/registry/client.ts";
import type { ProgramOutcome } from "../../src/runtime/run_program.ts";
import { assertSameBytes, readAll } from "../_kit/bytes.ts";
import { Cleanup, prependPath, tempDir } from "../_kit/cleanup.ts";
import {
  fakeCredentialHelper,
  privateRegistry,
  registryTest,
  startProxy,
  type startTokenServer,
  tokenRegistryWithBasic,
} from "../_kit/registry.ts";
import {
  basic,
  basicAuth,
  BOB,
  BOB_PASS,
  FAST,
  LAYOUT,
  PASS,
  saved,
  USER,
} from "../_kit/registry_client.ts";

/** A docker config file with `content`; returns its path. */
async function dockerConfig(cleanup: Cleanup, content: unknown) {
  const dir = await tempDir(cleanup, "docker-config");
  const path = join(dir, "config.json");
  await writeFile(path, JSON.stringify(content));
  return path;
}

const NO_CONFIG: FromRegistryOptions = { ...FAST, dockerConfig: false };

// ------------------------------------------------------------ the option

test("fromRegistry() refuses credentials that name no registry with a TypeError that says why", async () => {
  for (
    const credentials of [
      { username: USER, password: PASS },
      { identityToken: "tok" },
    ]
  ) {
    await assert.rejects(
      fromRegistry("registry.example.com/app:v1", {
        ...NO_CONFIG,
        // deno-lint-ignore no-explicit-any
        credentials: credentials as any,
        fetch: () => Promise.reject(new Error("nothing may be fetched")),
      }),
      {
        name: "TypeError",
        message:
          /name no registry, and would be sent to whatever registry a reference names/,
      },
    );
  }
  await assert.rejects(
    fromRegistry("registry.example.com/app:v1", {
      ...NO_CONFIG,
      credentials: { "ghcr.io": { username: USER } },
    }),
    {
      name: "TypeError",
      message:
        'Cannot use options.credentials["ghcr.io"]: give username and password, or identityToken',
    },
  );
});

registryTest(
  "fromRegistry() sends each registry only its own credentials, in one save of two registries",
  async (cleanup) => {
    const alice = await privateRegistry(cleanup, USER, PASS);
    const bob = await privateRegistry(cleanup, BOB, BOB_PASS);
    const a = await startProxy(cleanup, alice.url, () => undefined);
    const b = await startProxy(cleanup, bob.url, () => undefined);
    const layout = await fromOciLayout(LAYOUT, "basic");
    const expected = await readAll(
      save([["a/basic:v1", layout], ["b/basic:v1", layout]]),
    );
    const seen = (proxy: typeof a) =>
      new Set(proxy.requests.map((r) => r.authorization ?? "none"));

    // A map keyed by host, and a function of the host.
    for (
      const credentials of [
        {
          [a.host]: { username: USER, password: PASS },
          [b.host]: { username: BOB, password: BOB_PASS },
        },
        (host: string) =>
          host === a.host
            ? { username: USER, password: PASS }
            : host === b.host
            ? { username: BOB, password: BOB_PASS }
            : undefined,
      ]
    ) {
      a.requests.length = 0;
      b.requests.length = 0;
      const options = { ...NO_CONFIG, credentials };
      const images = [
        await fromRegistry(`${a.host}/oracle/basic:v1`, options),
        await fromRegistry(`${b.host}/oracle/basic:v1`, options),
      ];
      assertSameBytes(
        await readAll(
          save([["a/basic:v1", images[0]], ["b/basic:v1", images[1]]]),
        ),
        expected,
      );
      assert.deepEqual(seen(a), new Set(["none", basicAuth(USER, PASS)]));
      assert.deepEqual(seen(b), new Set(["none", basicAuth(BOB, BOB_PASS)]));
    }

    // One registry's credentials never go to another that a reference names.
    a.requests.length = 0;
    b.requests.length = 0;
    const onlyA = {
      ...NO_CONFIG,
      credentials: { registry: a.host, username: USER, password: PASS },
    };
    assertSameBytes(
      await saved(
        "oracle/basic:v1",
        await fromRegistry(`${a.host}/oracle/basic:v1`, onlyA),
      ),
      basic.expected,
    );
    await assert.rejects(fromRegistry(`${b.host}/oracle/basic:v1`, onlyA), {
      name: "DockerSaveError",
      code: "UNAUTHORIZED",
      message: new RegExp(`${b.host} requires credentials`),
    });
    assert.deepEqual(seen(b), new Set(["none"]));
  },
);

// ---------------------------------------------------------- docker config

registryTest(
  "fromRegistry() asks credHelpers, then credsStore, with the host on stdin, once per registry",
  async (cleanup) => {
    const alice = await privateRegistry(cleanup, USER, PASS);
    const bob = await privateRegistry(cleanup, BOB, BOB_PASS);
    const bin = await tempDir(cleanup, "bin");
    const perHost = await fakeCredentialHelper(bin, "perhost", {
      [alice.host]: { Username: USER, Secret: PASS },
    });
    const store = await fakeCredentialHelper(bin, "store", {
      [bob.host]: { Username: BOB, Secret: BOB_PASS },
    });
    prependPath(cleanup, bin);
    const path = await dockerConfig(cleanup, {
      credHelpers: { [alice.host]: "perhost" },
      credsStore: "store",
      // A helper is authoritative: these are never used.
      auths: {
        [alice.host]: { auth: btoa("wrong:wrong") },
        [bob.host]: { auth: btoa("wrong:wrong") },
      },
    });
    const options = { ...FAST, dockerConfig: path };
    for (const registry of [alice, bob]) {
      const image = await fromRegistry(
        `${registry.host}/oracle/basic:v1`,
        options,
      );
      assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    }
    assert.deepEqual(await perHost.asked(), [`get ${alice.host}`]);
    assert.deepEqual(await store.asked(), [`get ${bob.host}`]);
  },
);

registryTest(
  "fromRegistry() reports a credential helper that is missing or fails as BAD_CREDENTIALS, and one that has nothing as UNAUTHORIZED",
  async (cleanup) => {
    const registry = await privateRegistry(cleanup, USER, PASS);
    const bin = await tempDir(cleanup, "bin");
    const secret = "n0t-the-password";
    await fakeCredentialHelper(bin, "broken", {
      [registry.host]: { exit: 3, stdout: "boom: keychain locked\u001b[2J" },
    });
    await fakeCredentialHelper(bin, "empty", {});
    await fakeCredentialHelper(bin, "wrong", {
      [registry.host]: { Username: USER, Secret: secret },
    });
    prependPath(cleanup, bin);
    const reference = `${registry.host}/oracle/basic:v1`;
    const pull = async (credsStore: string) =>
      fromRegistry(reference, {
        ...FAST,
        dockerConfig: await dockerConfig(cleanup, { credsStore }),
      });
    await assert.rejects(pull("missing-helper"), {
      name: "DockerSaveError",
      code: "BAD_CREDENTIALS",
      message: new RegExp(
        `^Cannot get credentials for ${registry.host}: docker-credential-missing-helper \\(credsStore in .*config\\.json\\) is not on PATH$`,
      ),
    });
    await assert.rejects(pull("broken"), {
      name: "DockerSaveError",
      code: "BAD_CREDENTIALS",
      message: new RegExp(
        `docker-credential-broken get \\(credsStore in .*\\) exited with status 3: boom: keychain locked\\\\x1b\\[2J$`,
      ),
    });
    await assert.rejects(pull("empty"), {
      name: "DockerSaveError",
      code: "UNAUTHORIZED",
      message: new RegExp(
        `${registry.host} requires credentials .*; docker-credential-empty \\(credsStore in .*\\) has none for ${registry.host}$`,
      ),
    });
    await assert.rejects(pull("wrong"), (error: Error & { code?: string }) => {
      assert.equal(error.code, "UNAUTHORIZED");
      assert.match(error.message, /refused the credentials of user "alice"/);
      assert.ok(!error.message.includes(secret), "no secret in the message");
      return true;
    });
  },
);

test("dockerConfigCredentials() asks helpers for Docker Hub as https://index.docker.io/v1/, and skips them where programs cannot run", async () => {
  const cleanup = new Cleanup();
  try {
    const path = await dockerConfig(cleanup, {
      credHelpers: { "https://index.docker.io/v1/": "hub" },
      credsStore: "desktop",
    });
    const asked: string[] = [];
    const answer = (outcome: ProgramOutcome) =>
    (
      command: string,
      args: readonly string[],
      options?: { input?: string },
    ) => {
      asked.push(`${command} ${args.join(" ")} ${options?.input}`);
      return Promise.resolve(outcome);
    };
    const found = await dockerConfigCredentials("docker.io", {
      path,
      run: answer({
        kind: "exited",
        status: 0,
        stdout: '{"Username":"<token>","Secret":"idtok"}',
        stderr: "",
      }),
    });
    assert.deepEqual(found, { credentials: { identityToken: "idtok" } });
    assert.deepEqual(asked, [
      "docker-credential-hub get https://index.docker.io/v1/",
    ]);
    const skipped = await dockerConfigCredentials("ghcr.io", {
      path,
      run: answer({
        kind: "unavailable",
        reason: "this runtime cannot run programs",
      }),
    });
    assert.deepEqual(skipped, {
      note:
        `docker-credential-desktop (credsStore in ${path}) was not asked for credentials: this runtime cannot run programs`,
    });
    // The note reaches the error of a registry that wants credentials.
    const client = new RegistryClient({
      registry: "ghcr.io",
      host: "ghcr.io",
      secure: true,
      fetch: () =>
        Promise.resolve(
          new Response("", {
            status: 401,
            headers: { "www-authenticate": 'Basic realm="r"' },
          }),
        ),
      credentials: () => Promise.resolve(skipped),
      attempts: 0,
      delay: 1,
      maxDelay: 1,
      timeout: 1000,
    });
    await assert.rejects(client.manifest("org/app", "v1", "org/app:v1"), {
      name: "DockerSaveError",
      code: "UNAUTHORIZED",
      message:
        /requires credentials .*; docker-credential-desktop .* this runtime cannot run programs$/,
    });
  } finally {
    await cleanup.close();
  }
});

// --------------------------------------------------------- identity tokens

/** A token-auth registry holding oracle/basic:v1, and its token server. */
async function tokenRegistry(
  cleanup: Cleanup,
  { username, password, ...more }: Parameters<typeof startTokenServer>[1],
) {
  const found = await tokenRegistryWithBasic(
    cleanup,
    LAYOUT,
    username,
    password,
    more,
  );
  // Only the grants of the pull under test.
  found.tokens.grants.length = 0;
  return found;
}

registryTest(
  "fromRegistry() exchanges an identitytoken from auths by the OAuth2 refresh-token grant",
  async (cleanup) => {
    const { tokens, registry } = await tokenRegistry(cleanup, {
      username: USER,
      password: PASS,
      refreshToken: "refresh-me",
    });
    const path = await dockerConfig(cleanup, {
      auths: {
        [registry.host]: {
          auth: btoa(`${USER}:`),
          identitytoken: "refresh-me",
        },
      },
    });
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      dockerConfig: path,
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.deepEqual(tokens.grants, [{
      grant_type: "refresh_token",
      refresh_token: "refresh-me",
      client_id: "docker-save",
      scope: "repository:oracle/basic:pull",
      service: tokens.service,
    }]);
    assert.deepEqual(tokens.requests, [], "no GET token request");

    // A refresh token the server does not know: UNAUTHORIZED, no secret.
    await assert.rejects(
      fromRegistry(`${registry.host}/oracle/basic:v1`, {
        ...NO_CONFIG,
        credentials: { registry: registry.host, identityToken: "stale" },
      }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "UNAUTHORIZED");
        assert.match(error.message, /refused the identity token/);
        assert.ok(!error.message.includes("stale"));
        return true;
      },
    );
  },
);

registryTest(
  "fromRegistry() falls back to the GET token flow with a helper's <token> when the server refuses the grant",
  async (cleanup) => {
    // The server takes the identity token as a password of an empty user.
    const { tokens, registry } = await tokenRegistry(cleanup, {
      username: "",
      password: "id-token-1",
      refuseGrant: 404,
    });
    const bin = await tempDir(cleanup, "bin");
    const helper = await fakeCredentialHelper(bin, "oauth", {
      [registry.host]: { Username: "<token>", Secret: "id-token-1" },
    });
    prependPath(cleanup, bin);
    const path = await dockerConfig(cleanup, {
      credHelpers: { [registry.host]: "oauth" },
    });
    const image = await fromRegistry(`${registry.host}/oracle/basic:v1`, {
      ...FAST,
      dockerConfig: path,
    });
    assertSameBytes(await saved("oracle/basic:v1", image), basic.expected);
    assert.deepEqual(await helper.asked(), [`get ${registry.host}`]);
    assert.equal(tokens.grants.length, 1, "the grant was tried");
    assert.equal(tokens.grants[0].refresh_token, "id-token-1");
    assert.deepEqual(tokens.requests, [
      { scope: "repository:oracle/basic:pull", authorized: true },
    ]);
  },
);
