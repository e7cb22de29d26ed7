/**
 * Tags as docs/FORMAT.md "Tags" reads them: `[registry/]repository[:tag]`, a
 * registry only when the first part has `.` or `:`, the tag after the last
 * `:`, nothing normalised.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { save } from "../../src/save/save.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { parseTag, repositoryOf, repoTagOf } from "../../src/model/tag.ts";
import { BASIC_DIR } from "../_kit/images.ts";
import { memberText, readTar } from "../_kit/tar.ts";

function assertBadTag(text: string, message: RegExp): void {
  assert.throws(() => parseTag(text), {
    name: "DockerSaveError",
    code: "BAD_TAG",
    message,
  });
}

// --- parseTag(): registry ---------------------------------------------------

test("parseTag() reads a bare name as a repository without registry or tag", () => {
  assert.deepEqual(parseTag("ubuntu"), {
    registry: "",
    repository: "ubuntu",
    tag: undefined,
  });
});

test("parseTag() takes the first part as a registry when it has a '.'", () => {
  assert.deepEqual(parseTag("example.com/app:1.0"), {
    registry: "example.com",
    repository: "app",
    tag: "1.0",
  });
});

test("parseTag() takes the first part as a registry when it has a ':'", () => {
  assert.deepEqual(parseTag("localhost:5000/a/b:v1"), {
    registry: "localhost:5000",
    repository: "a/b",
    tag: "v1",
  });
});

test("parseTag() keeps a first part without '.' or ':' in the repository", () => {
  assert.deepEqual(parseTag("localhost/a:v1"), {
    registry: "",
    repository: "localhost/a",
    tag: "v1",
  });
  assert.deepEqual(parseTag("oracle/basic:v1"), {
    registry: "",
    repository: "oracle/basic",
    tag: "v1",
  });
});

test("parseTag() normalises nothing", () => {
  assert.deepEqual(parseTag("docker.io/library/ubuntu:22.04"), {
    registry: "docker.io",
    repository: "library/ubuntu",
    tag: "22.04",
  });
  assert.deepEqual(parseTag("ubuntu:latest"), {
    registry: "",
    repository: "ubuntu",
    tag: "latest",
  });
});

test("parseTag() errors with BAD_TAG for a registry with a port and no tag", () => {
  // The tag is what follows the last ':', here "5000/a/b".
  assertBadTag(
    "localhost:5000/a/b",
    /tag "5000\/a\/b" may only contain A-Za-z0-9_\.-/,
  );
});

// --- parseTag(): repository ---------------------------------------------------

test("parseTag() accepts every repository character a-z0-9_-./", () => {
  assert.equal(
    parseTag("abcdefghijklmnopqrstuvwxyz/0123456789_-.x:v1").repository,
    "abcdefghijklmnopqrstuvwxyz/0123456789_-.x",
  );
});

for (const repository of ["Ubuntu", "a b", "app@x", "caf\u00e9", "a+b"]) {
  test(`parseTag() errors with BAD_TAG for the repository ${JSON.stringify(repository)}`, () => {
    assertBadTag(`${repository}:v1`, /may only contain a-z0-9_-\.\//);
  });
}

test("parseTag() errors with BAD_TAG for a repository shorter than 2 characters", () => {
  assertBadTag("a:v1", /repository "a" must be at least 2 characters/);
  assertBadTag(
    "example.com/a:v1",
    /repository "a" must be at least 2 characters/,
  );
  assert.equal(parseTag("ab:v1").repository, "ab");
});

test("parseTag() errors with BAD_TAG for a repository longer than 255 characters", () => {
  assert.equal(parseTag(`${"r".repeat(255)}:v1`).repository, "r".repeat(255));
  assertBadTag(`${"r".repeat(256)}:v1`, /must be at most 255 characters/);
});

test("parseTag() counts the repository length without the registry", () => {
  const repository = "r".repeat(255);
  assert.deepEqual(parseTag(`example.com/${repository}:v1`), {
    registry: "example.com",
    repository,
    tag: "v1",
  });
});

// --- parseTag(): tag ------------------------------------------------------------

test("parseTag() accepts every tag character A-Za-z0-9_.-", () => {
  assert.equal(
    parseTag("app:ABCXYZabcxyz0123456789_.-").tag,
    "ABCXYZabcxyz0123456789_.-",
  );
});

for (const tag of ["v1+build", "v 1", "v1/x", "v\u00e9"]) {
  test(`parseTag() errors with BAD_TAG for the tag ${JSON.stringify(tag)}`, () => {
    assertBadTag(`app:${tag}`, /may only contain A-Za-z0-9_\.-/);
  });
}

test("parseTag() errors with BAD_TAG for an empty tag", () => {
  assertBadTag("app:", /tag "" must be at least 1 characters?/);
});

test("parseTag() errors with BAD_TAG for a tag longer than 127 characters", () => {
  assert.equal(parseTag(`app:${"t".repeat(127)}`).tag, "t".repeat(127));
  assertBadTag(`app:${"t".repeat(128)}`, /must be at most 127 characters/);
});

// --- repoTagOf() and repositoryOf() ---------------------------------------------

test("repoTagOf() adds :latest to an untagged name and keeps a tagged one as given", () => {
  assert.equal(repoTagOf("ubuntu"), "ubuntu:latest");
  assert.equal(repoTagOf("oracle/basic"), "oracle/basic:latest");
  assert.equal(repoTagOf("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
  assert.equal(repoTagOf("example.com/app:1.0"), "example.com/app:1.0");
});

test("repoTagOf() errors with BAD_TAG for a bad tag", () => {
  assert.throws(() => repoTagOf("localhost:5000/a/b"), {
    name: "DockerSaveError",
    code: "BAD_TAG",
    message: /tag "5000\/a\/b" may only contain/,
  });
});

test("repositoryOf() is registry/repository, or the repository without a registry", () => {
  assert.equal(repositoryOf(parseTag("ubuntu")), "ubuntu");
  assert.equal(repositoryOf(parseTag("oracle/basic:v1")), "oracle/basic");
  assert.equal(
    repositoryOf(parseTag("localhost:5000/a/b:v1")),
    "localhost:5000/a/b",
  );
  assert.equal(
    repositoryOf(parseTag("127.0.0.1:5000/oracle/basic:v1")),
    "127.0.0.1:5000/oracle/basic",
  );
});

// --- save() ---------------------------------------------------------------------

test("save() writes RepoTags and repositories for a registry tag and an untagged name", async () => {
  // The top v1 id of the golden image, from the reference tarball.
  const golden = await readTar(
    new Uint8Array(readFileSync(`${BASIC_DIR}expected.tar`)),
  );
  const top = JSON.parse(memberText(golden, "repositories"))["oracle/basic"].v1;
  assert.match(top, /^[0-9a-f]{64}$/);

  const image = await fromOciLayout(`${BASIC_DIR}oci`, "basic");
  const members = await readTar(
    save([
      ["127.0.0.1:5000/oracle/basic:v1", image],
      ["oracle/basic", image],
    ]),
  );

  const manifest = JSON.parse(memberText(members, "manifest.json"));
  assert.deepEqual(
    manifest.map((entry: { RepoTags: string[] }) => entry.RepoTags),
    [["127.0.0.1:5000/oracle/basic:v1"], ["oracle/basic:latest"]],
  );
  assert.deepEqual(JSON.parse(memberText(members, "repositories")), {
    "127.0.0.1:5000/oracle/basic": { v1: top },
    "oracle/basic": { latest: top },
  });
  // Python json.dumps(sort_keys=True): keys sorted, ", " and ": ".
  assert.equal(
    memberText(members, "repositories"),
    `{"127.0.0.1:5000/oracle/basic": {"v1": "${top}"}, "oracle/basic": {"latest": "${top}"}}`,
  );
});

test("save() keeps the name as given in RepoTags and repositories, without docker.io/library/", async () => {
  const image = await fromOciLayout(`${BASIC_DIR}oci`, "basic");
  const members = await readTar(save([["ubuntu", image]]));
  const [entry] = JSON.parse(memberText(members, "manifest.json"));
  assert.deepEqual(entry.RepoTags, ["ubuntu:latest"]);
  assert.deepEqual(
    Object.keys(JSON.parse(memberText(members, "repositories"))),
    ["ubuntu"],
  );
  assert.deepEqual(
    Object.keys(JSON.parse(memberText(members, "repositories")).ubuntu),
    ["latest"],
  );
});
