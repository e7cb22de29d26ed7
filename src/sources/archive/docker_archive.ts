/**
 * Images from a `docker save` tarball: the classic format (`manifest.json`,
 * `<id>/layer.tar`, `<id>/json`, `repositories`), docker ≥ 25's (an OCI
 * layout beside `manifest.json`, whose `Layers` name `blobs/sha256/<hex>`),
 * this library's own output, and any of them gzip-compressed.
 *
 * The archive is indexed once, in one streaming pass (see
 * `archive_index.ts`); layers are then streamed from their offsets with
 * positioned file reads. A gzip-compressed archive is gunzipped once, into
 * a temporary file, while it is indexed, and its layers are read from there.
 *
 * @module
 */

import { sha256Hex } from "../../model/digest.ts";
import { DockerSaveError } from "../../model/errors.ts";
import {
  type Descriptor,
  type Manifest,
  MEDIA_TYPES,
} from "../../model/image.ts";
import type {
  ImageWithV1Form,
  V1Form,
  V1FormLayer,
} from "../../model/v1_form.ts";
import {
  dumpJson,
  isJsonObject,
  type JsonValue,
  parseJson,
} from "../../model/json.ts";
import {
  type CheckedIndex,
  parseIndexManifest,
} from "../../model/index_manifest.ts";
import { isIndexDepthAllowed } from "../../model/index_walk.ts";
import { isIndexMediaType, parseManifest } from "../../model/manifest.ts";
import {
  blobPath,
  CONTAINERD_NAME_ANNOTATION,
  digestOfBlobPath,
  REF_NAME_ANNOTATION,
} from "../../model/oci_layout_names.ts";
import { createSha256 } from "../../runtime/hash.ts";
import { parseTag, repositoryOf, repoTagOf } from "../../model/tag.ts";
import {
  type ArchiveFileSystem,
  ArchiveIndex,
  type ArchiveMember,
  indexArchive,
  magicCompression,
  normalizePath,
} from "./archive_index.ts";
import { readVerifiedBlob } from "../bounded_read.ts";
import { parseSourceRef } from "../source_ref.ts";

export { ArchiveIndex };
export type { ArchiveFileSystem, ArchiveMember };
export type { ByteRange } from "../../runtime/fs.ts";

/** Options for `fromDockerArchive` and `indexDockerArchive`. */
export interface FromDockerArchiveOptions {
  /**
   * File access with ranged reads; `node:fs` where the runtime has it.
   * @default {nodeArchiveFileSystem()}
   */
  fs?: ArchiveFileSystem;
  /**
   * The archive's index from `indexDockerArchive`, to read several images of
   * one archive with a single indexing pass.
   */
  index?: ArchiveIndex;
}

/**
 * An image read from a docker archive, with the tags it had there and the
 * v1 form it was written in (kept when it is saved again).
 */
export interface DockerArchiveImage extends ImageWithV1Form {
  /** The `RepoTags` of its `manifest.json` entry (may be empty). */
  readonly repoTags: readonly string[];
}

/** A `docker-archive:FILE[:TAG][=NEWTAG]` source, split. */
export interface DockerArchiveSource {
  /** The archive file. */
  path: string;
  /** The `RepoTags` entry to read, if given. */
  tag?: string;
  /** The tag to save the image as, if given. */
  newTag?: string;
}

interface ManifestEntry {
  Config?: unknown;
  Layers?: unknown;
  RepoTags?: unknown;
  LayerSources?: unknown;
}

const V1_LAYER_NAME = /^([0-9a-f]{64})\/layer\.tar$/;
const V1_ID = /^[0-9a-f]{64}$/;
const IMAGE_NAME_ANNOTATIONS = [
  CONTAINERD_NAME_ANNOTATION,
  REF_NAME_ANNOTATION,
];

/**
 * Indexes a docker archive once (one streaming pass; gzip-compressed
 * archives too), hashing the members whose digest the archive does not
 * record, so that several images can be read from it with
 * `fromDockerArchive(path, tag, { index })`.
 *
 * @example
 * ```ts
 * import { fromDockerArchive, indexDockerArchive } from "./docker_archive.ts";
 * const index = await indexDockerArchive("both.tar");
 * const a = await fromDockerArchive("both.tar", "app:v1", { index });
 * const b = await fromDockerArchive("both.tar", "tool:v2", { index });
 * ```
 */
export function indexDockerArchive(
  path: string,
  options: Pick<FromDockerArchiveOptions, "fs"> = {},
): Promise<ArchiveIndex> {
  return indexArchive(path, {
    fs: options.fs,
    label: `docker archive "${path}"`,
    // blobs/sha256/<hex> is named by its digest; every other member may be a
    // layer.tar whose digest only its bytes tell.
    hash: (name) => digestOfBlobPath(name) === undefined,
  });
}

/**
 * The image of a docker archive's `manifest.json` entry whose `RepoTags`
 * has `tag` (the only entry when `tag` is omitted).
 *
 * Its manifest is the original one when the archive keeps it (an OCI layout
 * beside `manifest.json` with a manifest for the same config); otherwise a
 * Docker v2.2 manifest describing the layer bytes as stored: a plain
 * `layer.tar` as `…rootfs.diff.tar` (digest = its sha256 = its diff_id), a
 * gzip one as `…tar.gzip`. Foreign layers keep their `LayerSources`
 * descriptor and are served from their stored `layer.tar`. An archive with
 * v1 layer directories keeps its v1 ids and v1 json (`v1Form`), so saving it
 * again gives the same tarball; a new tag changes only `RepoTags` and
 * `repositories`.
 *
 * @example Re-tag an archive
 * ```ts
 * import { fromDockerArchive, save } from "../../../mod.ts";
 * const image = await fromDockerArchive("app.tar", "app:v1");
 * const tar = save([["registry.example.com/app:v2", image]]);
 * await tar.pipeTo(new WritableStream());
 * ```
 */
export async function fromDockerArchive(
  path: string,
  tag?: string,
  options: FromDockerArchiveOptions = {},
): Promise<DockerArchiveImage> {
  const archive = options.index ?? await indexDockerArchive(path, options);
  const label = archive.label;
  const what = tag === undefined ? label : `${label} tag "${tag}"`;
  const manifestMember = archive.get("manifest.json");
  if (!manifestMember) {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${label}: it has no manifest.json${
        archive.get("index.json")
          ? " (it is an OCI layout: read it with fromOciArchive)"
          : ""
      }`,
    );
  }
  const manifestBytes = await archive.read(manifestMember);
  const entries = parseArchiveJson(manifestBytes, manifestMember, label);
  if (!Array.isArray(entries) || !entries.every(isJsonObject)) {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${label}: manifest.json is not a list of objects`,
    );
  }
  const { entry, repoTag } = chooseEntry(
    entries as ManifestEntry[],
    tag,
    label,
  );
  const repoTags = stringsOf(entry.RepoTags);

  if (typeof entry.Config !== "string") {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${what}: its manifest.json entry has no Config`,
    );
  }
  const configMember = findMember(archive, entry.Config, "config", what);
  const rawConfig = await archive.read(configMember);
  const configDigest = `sha256:${await sha256Hex(rawConfig)}`;
  const diffIds = diffIdsOf(rawConfig, what);
  const layerNames = entry.Layers ?? [];
  if (
    !Array.isArray(layerNames) ||
    !layerNames.every((name) => typeof name === "string")
  ) {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${what}: its manifest.json Layers is not a list of paths`,
    );
  }
  if (layerNames.length !== diffIds.length) {
    throw new DockerSaveError(
      "LAYER_COUNT_MISMATCH",
      `Cannot read ${what}: manifest.json lists ${layerNames.length} layers but rootfs.diff_ids has ${diffIds.length}`,
    );
  }
  const stored = layerNames.map((name) => archive.get(name));

  // Where each layer's bytes are: blobs by digest as stored, and plain
  // uncompressed tars by the digest of the descriptor they serve.
  const blobs = new Map<string, ArchiveMember>();
  const plain = new Map<string, ArchiveMember>();
  let rawManifest: Uint8Array;
  let manifest: Manifest;
  const original = await findOciManifest(
    archive,
    configDigest,
    layerNames.length,
    repoTags,
  );
  const sources = layerSourcesOf(manifestBytes, entries, entry);
  if (original) {
    ({ raw: rawManifest, manifest } = withLayerSources(
      original,
      sources,
      diffIds,
      what,
    ));
    for (const [i, layer] of manifest.layers.entries()) {
      const blob = blobMember(archive, layer.digest);
      if (blob) blobs.set(layer.digest, blob);
      const member = stored[i];
      if (
        member && magicCompression(member.head) === "none" &&
        await memberDigest(archive, member) === diffIds[i]
      ) plain.set(layer.digest, member);
      if (!blob && !plain.has(layer.digest)) {
        throw new DockerSaveError(
          "BLOB_NOT_FOUND",
          `Cannot read ${what}: layer ${layer.digest} is neither a blob nor a layer.tar in the archive`,
        );
      }
    }
  } else {
    const layers: JsonValue[] = [];
    for (const [i, name] of layerNames.entries()) {
      const member = stored[i];
      if (!member) {
        throw new DockerSaveError(
          "BLOB_NOT_FOUND",
          `Cannot read ${what}: manifest.json names layer "${name}" but the archive has no such member`,
        );
      }
      const digest = await memberDigest(archive, member);
      const compression = magicCompression(member.head);
      const foreign = sources?.[diffIds[i]];
      if (isJsonObject(foreign) && typeof foreign.digest === "string") {
        // Kept as written, so that LayerSources comes out unchanged.
        layers.push(foreign);
        if (digest === foreign.digest) blobs.set(foreign.digest, member);
        if (compression === "none") plain.set(foreign.digest, member);
        continue;
      }
      layers.push({
        mediaType: compression === "gzip"
          ? MEDIA_TYPES.dockerLayerGzip
          : compression === "zstd"
          ? MEDIA_TYPES.ociLayerZstd
          : MEDIA_TYPES.dockerLayerTar,
        size: member.size,
        digest,
      });
      blobs.set(digest, member);
      if (compression === "none") plain.set(digest, member);
    }
    rawManifest = new TextEncoder().encode(dumpJson({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerManifest,
      config: {
        mediaType: MEDIA_TYPES.dockerConfig,
        size: rawConfig.byteLength,
        digest: configDigest,
      },
      layers,
    }));
    manifest = parseManifest(rawManifest, what);
  }

  const v1Form = await v1FormOf(
    archive,
    layerNames,
    manifest.layers,
    diffIds,
    repoTag ?? repoTags[0],
  );
  const image: DockerArchiveImage = {
    repoTags,
    rawManifest: () => Promise.resolve(rawManifest),
    manifest: () => Promise.resolve(manifest),
    rawConfig: () => Promise.resolve(rawConfig),
    openLayer: (layer: Descriptor) => {
      const member = blobs.get(layer.digest);
      if (!member) {
        return Promise.reject(
          new DockerSaveError(
            "BLOB_NOT_FOUND",
            plain.has(layer.digest)
              ? `Cannot open layer ${layer.digest} of ${what}: the archive holds only its uncompressed layer.tar; save it with layers: "uncompressed"`
              : `Cannot open layer ${layer.digest} of ${what}: no such blob in the archive`,
          ),
        );
      }
      return archive.open(member);
    },
    layerAccess: (layer: Descriptor) => {
      const blob = blobs.get(layer.digest);
      const member = plain.get(layer.digest);
      return Promise.resolve({
        openBlobFrom: blob && ((offset: number) => archive.open(blob, offset)),
        uncompressed: member && {
          size: member.size,
          openFrom: (offset: number) => archive.open(member, offset),
        },
      });
    },
    v1Form: () => Promise.resolve(v1Form),
  };
  return image;
}

/**
 * Splits a `docker-archive:FILE[:TAG][=NEWTAG]` source (the SOURCE grammar
 * of `source_ref.ts`). FILE is the longest prefix that is an existing file,
 * so it may contain `:` and `=`; TAG picks the `manifest.json` entry, NEWTAG
 * is the tag to save it as.
 *
 * @example
 * ```ts
 * import { parseDockerArchiveSource } from "./docker_archive.ts";
 * await parseDockerArchiveSource("docker-archive:app.tar:app:v1=example.com/app:v2");
 * // { path: "app.tar", tag: "app:v1", newTag: "example.com/app:v2" }
 * ```
 */
export async function parseDockerArchiveSource(
  source: string,
  isFile?: (path: string) => Promise<boolean>,
): Promise<DockerArchiveSource> {
  const parts = await parseSourceRef(source, {
    transport: "docker-archive",
    isFile,
  });
  const out: DockerArchiveSource = { path: parts.location };
  if (parts.name !== undefined) out.tag = parts.name;
  if (parts.newTag !== undefined) out.newTag = parts.newTag;
  return out;
}

function chooseEntry(
  entries: ManifestEntry[],
  tag: string | undefined,
  label: string,
): { entry: ManifestEntry; repoTag?: string } {
  const all = entries.flatMap((entry) => stringsOf(entry.RepoTags));
  const list = () =>
    all.length
      ? `tags: ${all.map((t) => `"${t}"`).join(", ")}`
      : "no entry has RepoTags";
  if (tag === undefined) {
    if (entries.length === 1) return { entry: entries[0] };
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot choose an image from ${label}: manifest.json has ${entries.length} entries, give a tag (${list()})`,
    );
  }
  const wanted = normalTag(tag);
  for (const entry of entries) {
    const repoTag = stringsOf(entry.RepoTags).find((t) =>
      t === tag || normalTag(t) === wanted
    );
    if (repoTag !== undefined) return { entry, repoTag };
  }
  // An untagged image can be chosen by its image id (the config digest).
  const id = tag.replace(/^sha256:/, "");
  if (V1_ID.test(id)) {
    const entry = entries.find((e) =>
      typeof e.Config === "string" && e.Config.includes(id)
    );
    if (entry) return { entry };
  }
  throw new DockerSaveError(
    "BAD_LAYOUT",
    `Cannot choose an image from ${label}: no manifest.json entry has the tag "${tag}" (${list()})`,
  );
}

function normalTag(tag: string): string | undefined {
  try {
    return repoTagOf(tag);
  } catch {
    return undefined;
  }
}

function stringsOf(value: unknown): string[] {
  return Array.isArray(value)
    ? value.filter((item): item is string => typeof item === "string")
    : [];
}

function findMember(
  archive: ArchiveIndex,
  name: string,
  kind: string,
  what: string,
): ArchiveMember {
  const member = archive.get(name);
  if (!member) {
    throw new DockerSaveError(
      "BLOB_NOT_FOUND",
      `Cannot read ${what}: manifest.json names ${kind} "${name}" but the archive has no such member`,
    );
  }
  return member;
}

function parseArchiveJson(
  bytes: Uint8Array,
  member: ArchiveMember,
  label: string,
): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new DockerSaveError(
      "BAD_LAYOUT",
      `Cannot read ${label}: ${member.name} is not JSON`,
      { cause: error },
    );
  }
}

function diffIdsOf(config: Uint8Array, what: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(config));
  } catch (error) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot read config of ${what}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const diffIds = (value as { rootfs?: { diff_ids?: unknown } } | null)
    ?.rootfs?.diff_ids ?? [];
  if (
    !Array.isArray(diffIds) || !diffIds.every((id) => typeof id === "string")
  ) {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot read config of ${what}: rootfs.diff_ids is not a list of digests`,
    );
  }
  return diffIds;
}

// LayerSources of the chosen entry, parsed like Python so that every value
// keeps its JSON form when manifest.json is written again.
function layerSourcesOf(
  manifestBytes: Uint8Array,
  entries: unknown[],
  entry: ManifestEntry,
): Record<string, JsonValue> | undefined {
  if (!isJsonObject(entry.LayerSources as JsonValue)) return undefined;
  const exact = parseJson(new TextDecoder().decode(manifestBytes));
  const i = entries.indexOf(entry);
  const sources = Array.isArray(exact) && isJsonObject(exact[i])
    ? exact[i].LayerSources
    : undefined;
  return isJsonObject(sources) ? sources : undefined;
}

// manifest.json's LayerSources is what a foreign layer was described as:
// where the OCI manifest describes the same blob differently (an OCI output
// makes it `nondistributable`, without `urls`), that layer descriptor is put
// back, so that LayerSources comes out unchanged.
function withLayerSources(
  original: { raw: Uint8Array; manifest: Manifest },
  sources: Record<string, JsonValue> | undefined,
  diffIds: readonly string[],
  what: string,
): { raw: Uint8Array; manifest: Manifest } {
  if (!sources) return original;
  const value = parseJson(new TextDecoder().decode(original.raw)) as {
    layers: JsonValue[];
  };
  let changed = false;
  for (const [i, layer] of original.manifest.layers.entries()) {
    const source = sources[diffIds[i]];
    if (
      isJsonObject(source) && source.digest === layer.digest &&
      dumpJson(source) !== dumpJson(value.layers[i])
    ) {
      value.layers[i] = source;
      changed = true;
    }
  }
  if (!changed) return original;
  const raw = new TextEncoder().encode(dumpJson(value as JsonValue));
  return { raw, manifest: parseManifest(raw, what) };
}

function blobMember(
  archive: ArchiveIndex,
  digest: string,
): ArchiveMember | undefined {
  try {
    return archive.get(blobPath(digest));
  } catch {
    return undefined; // not a sha256 digest: not a blob here
  }
}

// A member's sha256: learnt in the index pass, told by a blobs/sha256/<hex>
// name, or (for an index made without hashing it) read now.
async function memberDigest(
  archive: ArchiveIndex,
  member: ArchiveMember,
): Promise<string> {
  if (member.digest) return member.digest;
  const named = digestOfBlobPath(member.name);
  if (named) return named;
  const hasher = await createSha256();
  const reader = (await archive.open(member)).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    await hasher.update(value);
  }
  member.digest = `sha256:${await hasher.hexDigest()}`;
  return member.digest;
}

// The archive's OCI layout manifest for this image (same config, same layer
// count), preferring one whose annotations name one of its tags: the first
// such in depth-first order, else the first found. The layout is optional
// here, so whatever in it is broken is passed over. Each blob is read and
// hashed once (twice when a named path reaches it after an unnamed one), so
// an index fanning out to itself costs its size, not its paths; nesting
// stops at the one depth rule (model/index_walk.ts), as for a layout.
async function findOciManifest(
  archive: ArchiveIndex,
  configDigest: string,
  layerCount: number,
  repoTags: readonly string[],
): Promise<{ raw: Uint8Array; manifest: Manifest } | undefined> {
  const indexMember = archive.get("index.json");
  if (!indexMember || !archive.get("oci-layout")) return undefined;
  let top: CheckedIndex;
  try {
    top = parseIndexManifest(await archive.read(indexMember), "index.json");
  } catch {
    return undefined;
  }
  // Digest -> whether it was reached by a named path.
  const seen = new Map<string, boolean>();
  let first: { raw: Uint8Array; manifest: Manifest } | undefined;
  // Resolves to the first named match, which ends the walk.
  const walk = async (
    entries: readonly Descriptor[],
    depth: number,
    named: boolean,
  ): Promise<{ raw: Uint8Array; manifest: Manifest } | undefined> => {
    for (const descriptor of entries) {
      const isNamed = named || namesOneOf(descriptor, repoTags);
      const before = seen.get(descriptor.digest);
      if (before === true || (before === false && !isNamed)) continue;
      seen.set(descriptor.digest, isNamed);
      const member = blobMember(archive, descriptor.digest);
      if (!member || member.type !== "file") continue;
      let raw: Uint8Array;
      try {
        raw = await readVerifiedBlob(
          () => archive.open(member),
          descriptor,
          `blob ${descriptor.digest} of ${archive.label}`,
        );
      } catch {
        continue;
      }
      // An entry may be an index its descriptor does not call one.
      let nested: CheckedIndex | undefined;
      let manifest: Manifest | undefined;
      try {
        if (isIndexMediaType(descriptor.mediaType)) {
          nested = parseIndexManifest(raw, archive.label);
        } else {
          try {
            manifest = parseManifest(raw, archive.label);
          } catch {
            nested = parseIndexManifest(raw, archive.label);
          }
        }
      } catch {
        continue;
      }
      if (nested) {
        // The (depth + 1)-th index on its path, below index.json.
        if (!isIndexDepthAllowed(depth + 1)) continue;
        const found = await walk(nested.manifests, depth + 1, isNamed);
        if (found) return found;
      } else if (
        manifest && manifest.config.digest === configDigest &&
        manifest.layers.length === layerCount
      ) {
        if (isNamed) return { raw, manifest };
        first ??= { raw, manifest };
      }
    }
    return undefined;
  };
  return await walk(top.manifests, 0, false) ?? first;
}

// Whether an index entry's image-name annotations name one of the tags.
function namesOneOf(
  descriptor: Descriptor,
  repoTags: readonly string[],
): boolean {
  return IMAGE_NAME_ANNOTATIONS.some((key) => {
    const name = descriptor.annotations?.[key];
    return typeof name === "string" &&
      repoTags.some((tag) => name === tag || name.endsWith(`/${tag}`));
  });
}

// The v1 form of a classic archive: every Layers path is <id>/layer.tar with
// an <id>/json beside it. The top id is what `repositories` names for the
// tag (it may be a throwaway id without a directory), else the last layer's.
async function v1FormOf(
  archive: ArchiveIndex,
  layerNames: readonly string[],
  layers: readonly Descriptor[],
  diffIds: readonly string[],
  repoTag: string | undefined,
): Promise<V1Form | undefined> {
  if (layerNames.length === 0) return undefined;
  const form: V1FormLayer[] = [];
  for (const [i, name] of layerNames.entries()) {
    const id = V1_LAYER_NAME.exec(normalizePath(name))?.[1];
    const json = id ? archive.get(`${id}/json`) : undefined;
    if (!id || !json) return undefined;
    form.push({
      id,
      json: await archive.read(json),
      layer: layers[i],
      diffId: diffIds[i],
    });
  }
  form.reverse();
  let topId = form[0].id;
  const repositories = archive.get("repositories");
  if (repositories && repoTag !== undefined) {
    const bytes = await archive.read(repositories);
    // repositories is optional: a broken one is ignored like a missing one.
    try {
      const value = JSON.parse(new TextDecoder().decode(bytes));
      const parsed = parseTag(repoTag);
      const named = value?.[repositoryOf(parsed)]?.[parsed.tag ?? "latest"];
      if (typeof named === "string" && V1_ID.test(named)) topId = named;
    } catch {
      // keep the last layer's id
    }
  }
  return { topId, layers: form };
}
