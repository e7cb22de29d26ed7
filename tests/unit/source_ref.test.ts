/**
 * parseSourceRef(): the one SOURCE grammar, for every kind of source, and
 * the parsers built on it (parseOciArchiveSource, parseDockerArchiveSource,
 * the CLI's parseSource) agree with it. Paths are looked up in a fake file
 * system, except where the CLI's real one is used.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { parseDockerArchiveSource } from "../../src/sources/archive/docker_archive.ts";
import { parseOciArchiveSource } from "../../src/sources/archive/oci_archive.ts";
import { parseSource } from "../../src/cli.ts";
import {
  parseSourceRef,
  type ParseSourceRefOptions,
} from "../../src/sources/source_ref.ts";
import { withTemp } from "../_kit/cleanup.ts";

/** A file system holding exactly these files and directories. */
function fakeFs(
  files: string[],
  dirs: string[] = [],
): Required<Omit<ParseSourceRefOptions, "transport">> {
  return {
    isFile: (path) => Promise.resolve(files.includes(path)),
    isDirectory: (path) => Promise.resolve(dirs.includes(path)),
  };
}

const FS = fakeFs(["a.tar", "x:y.tar", "a:b=c.tar", "lay"], [
  "oci",
  "lay",
  "lay:out",
]);

test("parseSourceRef() splits every kind with one rule: the longest existing path, then [:NAME][=TAG]", async () => {
  const digest = `sha256:${"a".repeat(64)}`;
  const cases: [string, object][] = [
    ["oci:oci", { transport: "oci", location: "oci" }],
    ["oci:oci:app", { transport: "oci", location: "oci", name: "app" }],
    ["oci:oci=app:v1", { transport: "oci", location: "oci", newTag: "app:v1" }],
    [
      "oci:oci:app=example.com/app:v1",
      {
        transport: "oci",
        location: "oci",
        name: "app",
        newTag: "example.com/app:v1",
      },
    ],
    // The longest existing directory wins, whatever it contains.
    ["oci:lay:out:a:b", {
      transport: "oci",
      location: "lay:out",
      name: "a:b",
    }],
    ["oci:lay:b", { transport: "oci", location: "lay", name: "b" }],
    // "lay" is a directory for oci: and a file for the archives.
    ["oci-archive:lay:b", {
      transport: "oci-archive",
      location: "lay",
      name: "b",
    }],
    [
      "oci-archive:x:y.tar:app=new/app:v2",
      {
        transport: "oci-archive",
        location: "x:y.tar",
        name: "app",
        newTag: "new/app:v2",
      },
    ],
    [
      "docker-archive:a:b=c.tar:app:v1=new/app:v2",
      {
        transport: "docker-archive",
        location: "a:b=c.tar",
        name: "app:v1",
        newTag: "new/app:v2",
      },
    ],
    [
      "docker-archive:a:b=c.tar=localhost:5000/ab:1",
      {
        transport: "docker-archive",
        location: "a:b=c.tar",
        newTag: "localhost:5000/ab:1",
      },
    ],
    ["docker-archive:a.tar", {
      transport: "docker-archive",
      location: "a.tar",
    }],
    ["alpine:3.20", { transport: "docker", location: "alpine:3.20" }],
    ["docker://alpine", { transport: "docker", location: "alpine" }],
    [
      `ghcr.io/org/app@${digest}=app:pinned`,
      {
        transport: "docker",
        location: `ghcr.io/org/app@${digest}`,
        newTag: "app:pinned",
      },
    ],
    // A file named like a reference is still a reference without a prefix.
    ["a.tar", { transport: "docker", location: "a.tar" }],
  ];
  for (const [source, expected] of cases) {
    assert.deepEqual(await parseSourceRef(source, FS), expected, source);
  }
});

test("parseSourceRef() rejects bad sources with DockerSaveErrors", async () => {
  const cases: [string, string, RegExp][] = [
    ["oci:nope:app", "BAD_LAYOUT", /"oci:nope:app": no such directory$/],
    ["oci-archive:oci", "BAD_LAYOUT", /"oci-archive:oci": no such file$/],
    ["docker-archive:", "BAD_LAYOUT", /no such file$/],
    ["oci:oci:", "BAD_TAG", /the name after "oci:" is empty/],
    ["oci:oci:=a:b", "BAD_TAG", /the name after "oci:" is empty/],
    ["oci:oci=", "BAD_TAG", /"" after "=" is not a tag/],
    ["oci:oci:app=a=b", "BAD_TAG", /"a=b" after "=" is not a tag/],
    ["docker-archive:a.tar=Bad:Tag", "BAD_TAG", /Bad/],
    ["alpine=", "BAD_TAG", /"" after "=" is not a tag/],
    ["alpine=Bad", "BAD_TAG", /Bad/],
    ["Alpine", "BAD_REFERENCE", /Alpine/],
    ["dir:/tmp/x", "BAD_REFERENCE", /its transport is not supported/],
    ["containers-storage:app", "BAD_REFERENCE", /not supported/],
  ];
  for (const [source, code, message] of cases) {
    await assert.rejects(parseSourceRef(source, FS), {
      name: "DockerSaveError",
      code,
      message,
    }, source);
  }
  await assert.rejects(
    parseSourceRef("oci:oci", { ...FS, transport: "docker-archive" }),
    {
      name: "TypeError",
      message:
        'Cannot parse source "oci:oci": it does not start with "docker-archive:"',
    },
  );
});

// Paths, names and tags as generated parts; a source is built from them and
// must parse back to them whenever only the generated path exists.
const segment = fc.stringMatching(/^[a-z0-9._-]{1,6}$/);
const pathPart = fc.array(segment, { minLength: 1, maxLength: 4 }).chain((
  parts,
) =>
  fc.array(fc.constantFrom("/", ":", "=", "-"), {
    minLength: parts.length - 1,
    maxLength: parts.length - 1,
  }).map((glue) =>
    parts.map((part, i) => `${glue[i - 1] ?? ""}${part}`).join("")
  )
);
const refName = fc.array(segment, { minLength: 1, maxLength: 3 }).map((
  parts,
) => parts.join(":"));
const tag = fc.tuple(
  fc.stringMatching(/^[a-z0-9]{2,6}$/),
  fc.stringMatching(/^[a-z0-9]{1,6}$/),
).map(([repo, version]) => `example.com:5000/${repo}:${version}`);

test("parseSourceRef() gives back the parts a local source is built from", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("oci", "oci-archive", "docker-archive" as const),
      pathPart,
      fc.option(refName, { nil: undefined }),
      fc.option(tag, { nil: undefined }),
      async (transport, location, name, newTag) => {
        const source = `${transport}:${location}${
          name === undefined ? "" : `:${name}`
        }${newTag === undefined ? "" : `=${newTag}`}`;
        const fs = fakeFs([location], [location]);
        const expected: Record<string, string> = { transport, location };
        if (name !== undefined) expected.name = name;
        if (newTag !== undefined) expected.newTag = newTag;
        assert.deepEqual(await parseSourceRef(source, fs), expected, source);
        // The one-kind parsers are the same split under their own names.
        if (transport === "oci-archive") {
          const parsed = await parseOciArchiveSource(source, fs.isFile);
          assert.deepEqual(parsed, {
            path: location,
            ...(name === undefined ? {} : { ref: name }),
            ...(newTag === undefined ? {} : { newTag }),
          });
        } else if (transport === "docker-archive") {
          const parsed = await parseDockerArchiveSource(source, fs.isFile);
          assert.deepEqual(parsed, {
            path: location,
            ...(name === undefined ? {} : { tag: name }),
            ...(newTag === undefined ? {} : { newTag }),
          });
        }
      },
    ),
    { seed: 20240609, numRuns: 300 },
  );
});

test("parseSource() (the CLI) splits oci: and archives like parseSourceRef() on a real file system", async () => {
  await withTemp("docker-save-source-ref-", async (dir) => {
    // DIR and FILE may contain ":" and "="; the longest existing one wins.
    const layout = join(dir, "lay:out=1");
    mkdirSync(layout);
    mkdirSync(join(dir, "lay"));
    const archive = join(dir, "a:b=c.tar");
    writeFileSync(archive, "");
    for (
      const [source, expected] of [
        [`oci:${layout}:app:1`, {
          kind: "oci",
          dir: layout,
          ref: "app:1",
          tag: "app:1",
        }],
        [`oci:${layout}=x/y:z`, {
          kind: "oci",
          dir: layout,
          ref: undefined,
          tag: "x/y:z",
        }],
        [`docker-archive:${archive}:app:v1`, {
          kind: "docker-archive",
          path: archive,
          name: "app:v1",
          tag: "app:v1",
        }],
        [`oci-archive:${archive}=x/y:z`, {
          kind: "oci-archive",
          path: archive,
          name: undefined,
          tag: "x/y:z",
        }],
      ] as const
    ) {
      assert.deepEqual(await parseSource(source), expected, source);
      const ref = await parseSourceRef(source);
      assert.equal(
        ref.location,
        "dir" in expected ? expected.dir : expected.path,
      );
    }
    await assert.rejects(parseSource(`oci:${dir}/nope:app`), {
      name: "DockerSaveError",
      code: "BAD_LAYOUT",
      message: `Cannot read source "oci:${dir}/nope:app": no such directory`,
    });
  });
});
