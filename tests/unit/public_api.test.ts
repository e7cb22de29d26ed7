/**
 * The public API, pinned: the values `mod.ts` and `src/cli.ts` (the `./cli`
 * export) give at run time, and every name, types included, that `mod.ts`
 * exports. A change to the API must change the lists below, so it shows as a
 * diff in review (and in CHANGELOG.md).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const LIBRARY_VALUES = [
  "DockerSaveError",
  "MEDIA_TYPES",
  "buildImage",
  "buildIndex",
  "describeLayer",
  "fromDockerArchive",
  "fromMemory",
  "fromOciArchive",
  "fromOciArchiveIndex",
  "fromOciLayout",
  "fromOciLayoutIndex",
  "fromRegistry",
  "fromRegistryIndex",
  "hasV1Form",
  "indexDockerArchive",
  "indexOciArchive",
  "isImageIndex",
  "normalizeReference",
  "save",
  "saveResponse",
  "saveSize",
  "saveToFile",
  "selectPlatforms",
  "wrapImage",
];

const LIBRARY_TYPES = [
  "ArchiveFileSystem",
  "ArchiveIndex",
  "ArchiveMember",
  "BuildImageOptions",
  "ByteRange",
  "ByteSource",
  "Descriptor",
  "DockerArchiveImage",
  "DockerSaveErrorCode",
  "FileSystem",
  "FromDockerArchiveOptions",
  "FromOciArchiveOptions",
  "FromOciLayoutOptions",
  "FromRegistryOptions",
  "Image",
  "ImageIndex",
  "ImageWithV1Form",
  "IndexChild",
  "IndexManifest",
  "LayerAccess",
  "LayerCompression",
  "LayerDescription",
  "LayerMode",
  "Manifest",
  "MemoryImageParts",
  "MirrorAnswer",
  "Platform",
  "PlatformSelection",
  "ProgressListener",
  "ProgressUpdate",
  "RegistryCredentials",
  "RegistryCredentialsOption",
  "RegistryHostCredentials",
  "RegistryImage",
  "RegistryRetryOptions",
  "RegistryTls",
  "RegistryTlsOption",
  "RetryNotice",
  "SaveEntries",
  "SaveFormat",
  "SaveOptions",
  "UncompressedSizes",
  "V1Form",
  "V1FormLayer",
  "WriteFileOptions",
];

const CLI_VALUES = ["USAGE", "main", "parseArgs", "parseSource"];

/** Every name in `mod.ts`'s `export { … }` lists; `type` marks a type. */
function exportedNames(source: string): { values: string[]; types: string[] } {
  assert.doesNotMatch(source, /export \*/, "mod.ts names what it exports");
  const values: string[] = [];
  const types: string[] = [];
  for (const [, only, list] of source.matchAll(/export (type )?\{([^}]*)\}/g)) {
    for (const item of list.split(",").map((part) => part.trim())) {
      if (item === "") continue;
      const name = item.replace(/^type /, "").split(/ as /).at(-1)!.trim();
      (only || item.startsWith("type ") ? types : values).push(name);
    }
  }
  return { values: values.sort(), types: types.sort() };
}

test("mod.ts exports exactly the public values", async () => {
  const library = await import("../../mod.ts");
  assert.deepEqual(Object.keys(library).sort(), LIBRARY_VALUES);
});

test("mod.ts names exactly the public values and types", () => {
  const source = readFileSync(new URL("../../mod.ts", import.meta.url), "utf8");
  assert.deepEqual(exportedNames(source), {
    values: LIBRARY_VALUES,
    types: LIBRARY_TYPES,
  });
});

test("src/cli.ts (the ./cli export) exports exactly the CLI's values", async () => {
  const cli = await import("../../src/cli.ts");
  assert.deepEqual(Object.keys(cli).sort(), CLI_VALUES);
});
