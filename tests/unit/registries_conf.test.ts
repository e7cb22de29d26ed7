/**
 * registries.conf (containers-registries.conf(5)) parsed with smol-toml, and
 * the endpoints a pull tries (`endpointsFor`): Docker Hub's mirrors, the
 * longest matching prefix's mirrors and location, `pull-from-mirror`,
 * `blocked`.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { DockerSaveError } from "../../src/model/errors.ts";
import { endpointsFor } from "../../src/sources/registry/mirrors.ts";
import {
  parseRegistriesConf,
  readRegistriesConf,
} from "../../src/sources/registry/registries_conf.ts";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

test("parseRegistriesConf() and endpointsFor(): mirrors first, the longest prefix, location moves the name, pull-from-mirror", async () => {
  const conf = await parseRegistriesConf(
    `
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "example.com"
location = "example.com"
[[registry.mirror]]
location = "mirror.lan/example"
[[registry.mirror]]
location = "127.0.0.1:5001"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
prefix = "example.com/team"
location = "internal.lan:5000/moved"

[[registry]]
prefix = "*.blocked.example"
blocked = true
`,
    "test.conf",
  );
  assert.deepEqual(endpointsFor("example.com", "app/x", false, { conf }), [
    { registry: "mirror.lan", repository: "example/app/x", mirror: true },
    { registry: "example.com", repository: "app/x", mirror: false },
  ]);
  assert.deepEqual(endpointsFor("example.com", "app/x", true, { conf })[1], {
    registry: "127.0.0.1:5001",
    repository: "app/x",
    mirror: true,
    scheme: "http",
  });
  assert.deepEqual(endpointsFor("example.com", "team/app", false, { conf }), [
    { registry: "internal.lan:5000", repository: "moved/app", mirror: false },
  ]);
  // "example.com/teamwork" is not under the prefix "example.com/team".
  assert.equal(
    endpointsFor("example.com", "teamwork", false, { conf }).length,
    2,
  );
  assert.throws(
    () => endpointsFor("a.blocked.example", "x", false, { conf }),
    (e) => e instanceof DockerSaveError && e.code === "BAD_REFERENCE",
  );
  assert.deepEqual(
    endpointsFor("docker.io", "library/alpine", false, {
      registryMirrors: ["https://mirror.gcr.io", "127.0.0.1:5002"],
      conf: [],
    }),
    [
      {
        registry: "mirror.gcr.io",
        repository: "library/alpine",
        mirror: true,
        scheme: "https",
      },
      {
        registry: "127.0.0.1:5002",
        repository: "library/alpine",
        mirror: true,
      },
      { registry: "docker.io", repository: "library/alpine", mirror: false },
    ],
  );
  // Docker Hub's mirrors are Docker Hub's only.
  assert.equal(
    endpointsFor("ghcr.io", "a/b", false, {
      registryMirrors: ["mirror.lan"],
      conf: [],
    }).length,
    1,
  );
  await assert.rejects(
    parseRegistriesConf("[[registry]]\nprefix = 1\n", "bad.conf"),
    (e) => e instanceof DockerSaveError && e.code === "BAD_REGISTRIES_CONF",
  );
  await assert.rejects(
    parseRegistriesConf("[[registry]\n", "bad.conf"),
    (e) => e instanceof DockerSaveError && e.code === "BAD_REGISTRIES_CONF",
  );
});

test("readRegistriesConf() applies registries.conf.d/*.conf after the file, in lexical order; a later [[registry]] of the same prefix replaces an earlier one", async () => {
  const dir = await mkdtemp(join(tmpdir(), "registries-conf-"));
  try {
    const main = join(dir, "registries.conf");
    await writeFile(
      main,
      `[[registry]]\nprefix = "example.com"\nlocation = "main.lan"\n\n` +
        `[[registry]]\nprefix = "kept.example"\nlocation = "kept.lan"\n`,
    );
    const dropIns = join(dir, "registries.conf.d");
    await mkdir(dropIns);
    // Written out of order: "10-" comes before "20-" whatever the disk says.
    await writeFile(
      join(dropIns, "20-last.conf"),
      `[[registry]]\nprefix = "example.com"\nlocation = "last.lan"\n`,
    );
    await writeFile(
      join(dropIns, "10-first.conf"),
      `[[registry]]\nprefix = "example.com"\nlocation = "first.lan"\n\n` +
        `[[registry]]\nprefix = "added.example"\nblocked = true\n`,
    );
    // Not a .conf: not read (it would not even parse).
    await writeFile(join(dropIns, "notes.txt"), "[[registry\n");
    const entries = await readRegistriesConf(main);
    const byPrefix = new Map(entries.map((e) => [e.prefix, e]));
    assert.equal(entries.length, 3, JSON.stringify(entries));
    assert.equal(byPrefix.get("example.com")?.location, "last.lan");
    assert.equal(byPrefix.get("kept.example")?.location, "kept.lan");
    assert.equal(byPrefix.get("added.example")?.blocked, true);
    // A bad drop-in is named in the error.
    await writeFile(join(dropIns, "30-bad.conf"), "[[registry]\n");
    await assert.rejects(
      readRegistriesConf(main),
      (error: unknown) =>
        error instanceof DockerSaveError &&
        error.code === "BAD_REGISTRIES_CONF" &&
        error.message.includes("30-bad.conf"),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
