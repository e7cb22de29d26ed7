/**
 * The CLI's registry credentials: `--creds HOST=USER:PASS` (repeatable),
 * `--creds USER:PASS` only for one registry host, `--authfile FILE`; each
 * registry receives only its own credentials, and secrets never reach
 * stderr. Against Debian's registry with htpasswd, behind recording proxies.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "../../src/cli.ts";
import { parseCreds } from "../../src/cli/credentials.ts";
import { type Cleanup, tempDir } from "../_kit/cleanup.ts";
import { runCli } from "../_kit/processes.ts";
import {
  privateRegistry,
  type Proxy,
  registryTest,
  startProxy,
} from "../_kit/registry.ts";
import {
  basic,
  basicAuth,
  BOB,
  BOB_PASS,
  PASS,
  USER,
} from "../_kit/registry_client.ts";

test("parseCreds() tells HOST=USER:PASS from USER:PASS", () => {
  assert.deepEqual(parseCreds("ghcr.io=ci:pa:ss"), {
    host: "ghcr.io",
    username: "ci",
    password: "pa:ss",
  });
  assert.deepEqual(parseCreds("registry.example:5000=ci:x"), {
    host: "registry.example:5000",
    username: "ci",
    password: "x",
  });
  assert.deepEqual(parseCreds("index.docker.io=me:x"), {
    host: "docker.io",
    username: "me",
    password: "x",
  });
  // "me" is no registry host: a user name with "=" in the password's place.
  assert.deepEqual(parseCreds("me=x:y"), { username: "me=x", password: "y" });
  assert.deepEqual(parseCreds("me:pa=ss"), {
    username: "me",
    password: "pa=ss",
  });
  assert.equal(parseCreds("ghcr.io=nocolon"), undefined);
  assert.equal(parseCreds(":nouser"), undefined);
});

test("parseArgs() keeps every --creds and --authfile, and never quotes a secret", () => {
  const args = parseArgs([
    "--creds",
    "ghcr.io=ci:one",
    "--creds=localhost:5000=me:two",
    "--authfile",
    "/run/auth.json",
    "ghcr.io/org/app:1",
  ]);
  assert.deepEqual(args.creds, [
    { host: "ghcr.io", username: "ci", password: "one" },
    { host: "localhost:5000", username: "me", password: "two" },
  ]);
  assert.equal(args.authfile, "/run/auth.json");
  assert.throws(() => parseArgs(["--creds", "s3cret-no-colon"]), {
    message: "--creds takes USER:PASS or HOST=USER:PASS (see --help)",
  });
  assert.throws(
    () => parseArgs(["--creds", "ghcr.io=a:s3cret", "--creds", "ghcr.io=b:c"]),
    (error: Error) => {
      assert.equal(
        error.message,
        "--creds ghcr.io=… is given twice (see --help)",
      );
      return true;
    },
  );
});

/** An htpasswd registry for `user` holding oracle/basic:v1, behind a proxy. */
async function proxiedRegistry(
  cleanup: Cleanup,
  user: string,
  pass: string,
): Promise<Proxy> {
  const registry = await privateRegistry(cleanup, user, pass);
  return await startProxy(cleanup, registry.url, () => undefined);
}

const sent = (proxy: Proxy) =>
  new Set(proxy.requests.map((r) => r.authorization ?? "none"));

registryTest(
  "cli sends each registry only its --creds HOST=USER:PASS, and refuses a bare USER:PASS for two registries",
  async (cleanup) => {
    const a = await proxiedRegistry(cleanup, USER, PASS);
    const b = await proxiedRegistry(cleanup, BOB, BOB_PASS);
    const sources = [
      `${a.host}/oracle/basic:v1=a/basic:v1`,
      `${b.host}/oracle/basic:v1=b/basic:v1`,
    ];
    const dir = await tempDir(cleanup, "cli");

    const ambiguous = await runCli([
      "-q",
      "-o",
      join(dir, "x.tar"),
      "--creds",
      `${USER}:${PASS}`,
      ...sources,
    ]);
    assert.equal(ambiguous.code, 1);
    assert.equal(
      ambiguous.stderr,
      `docker-save: --creds USER:PASS is for one registry, but the sources name ${a.host}, ${b.host}: give --creds HOST=USER:PASS for each (see --help)\n`,
    );
    assert.deepEqual(a.requests, [], "nothing was sent");

    const out = join(dir, "both.tar");
    const ok = await runCli([
      "-o",
      out,
      "--creds",
      `${a.host}=${USER}:${PASS}`,
      "--creds",
      `${b.host}=${BOB}:${BOB_PASS}`,
      ...sources,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(sent(a), new Set(["none", basicAuth(USER, PASS)]));
    assert.deepEqual(sent(b), new Set(["none", basicAuth(BOB, BOB_PASS)]));
    for (const secret of [PASS, BOB_PASS]) {
      assert.ok(!ok.stderr.includes(secret), "no secret in progress lines");
    }

    // A bare USER:PASS for one registry goes there and nowhere else.
    a.requests.length = 0;
    b.requests.length = 0;
    const one = await runCli([
      "-q",
      "--creds",
      `${USER}:${PASS}`,
      `${a.host}/oracle/basic:v1=oracle/basic:v1`,
    ]);
    assert.equal(one.code, 0, one.stderr);
    assert.ok(Buffer.from(basic.expected).equals(one.stdout));
    assert.deepEqual(sent(a), new Set(["none", basicAuth(USER, PASS)]));
    assert.deepEqual(b.requests, []);

    // Wrong credentials: the error names the user, never the password.
    const wrong = await runCli([
      "-q",
      "--creds",
      `${b.host}=${BOB}:not-${BOB_PASS}`,
      sources[1],
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the credentials of user "bob"/);
    assert.ok(!wrong.stderr.includes(BOB_PASS));
  },
);

registryTest(
  "cli reads credentials from --authfile",
  async (cleanup) => {
    const a = await proxiedRegistry(cleanup, USER, PASS);
    const dir = await tempDir(cleanup, "authfile");
    const authfile = join(dir, "auth.json");
    await writeFile(
      authfile,
      JSON.stringify({
        auths: { [a.host]: { auth: btoa(`${USER}:${PASS}`) } },
      }),
    );
    const ok = await runCli([
      "-q",
      "--authfile",
      authfile,
      `${a.host}/oracle/basic:v1=oracle/basic:v1`,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Buffer.from(basic.expected).equals(ok.stdout));
    assert.deepEqual(sent(a), new Set(["none", basicAuth(USER, PASS)]));
  },
);
