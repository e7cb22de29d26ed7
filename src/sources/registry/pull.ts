/**
 * Images pulled from a registry (Docker Registry HTTP API v2 / OCI
 * distribution) with `fetch` only, so it runs on Deno, Bun, Node and edge
 * runtimes. After go-containerregistry's `remote/`: the image reference is
 * resolved to a manifest here (tag → index → platform), the manifest and
 * config are fetched up front, and layers are streamed when `save()` asks
 * for them.
 *
 * @module
 */

import { assertSha256Digest, sha256Hex } from "../../model/digest.ts";
import { DockerSaveError } from "../../model/errors.ts";
import {
  type Descriptor,
  type Image,
  isForeignLayer,
  layerCompression,
  type Manifest,
  type Platform,
} from "../../model/image.ts";
import {
  isIndexMediaType,
  parseArtifact,
  parseManifest,
} from "../../model/manifest.ts";
import type { ImageIndex, IndexManifest } from "../../model/image_index.ts";
import {
  imageOrArtifact,
  parseIndexManifest,
} from "../../model/index_manifest.ts";
import { assertIndexDepth, followPlatform } from "../../model/index_walk.ts";
import { checkImagePlatform } from "../../model/platform.ts";
import { untrustedText } from "../../util/untrusted_text.ts";
import {
  apiHost,
  formatReference,
  hostname,
  isLoopback,
  parseReference,
} from "../../model/image_reference.ts";
import {
  type CredentialsFound,
  dockerConfigCredentials,
} from "./docker_config.ts";
import { RegistryClient } from "./client.ts";
import { RegistryNetwork } from "./network.ts";
import { type Endpoint, endpointsFor, fallsBack } from "./mirrors.ts";
import { readRegistriesConf } from "./registries_conf.ts";
import type { RegistryTlsOption } from "./tls.ts";
import {
  assertCredentialsOption,
  credentialsFor,
  type RegistryCredentialsOption,
} from "./credentials.ts";

export type { RegistryTls, RegistryTlsOption } from "./tls.ts";
export type {
  RegistryCredentials,
  RegistryCredentialsOption,
  RegistryHostCredentials,
} from "./credentials.ts";
import type { RetryNotice } from "./transport.ts";
export type { RetryNotice };

/**
 * How failed requests are retried.
 *
 * @example Fail fast
 * ```ts
 * import type { RegistryRetryOptions } from "./pull.ts";
 * const retry: RegistryRetryOptions = { attempts: 1, delay: 100 };
 * ```
 */
export interface RegistryRetryOptions {
  /**
   * Retries after a failed attempt (429, 5xx, network error), and resumes
   * per blob without progress in between.
   * @default {5}
   */
  attempts?: number;
  /**
   * First backoff delay in milliseconds, doubled per retry, with jitter.
   * @default {500}
   */
  delay?: number;
  /**
   * Longest backoff delay in milliseconds; also caps `Retry-After`.
   * @default {10000}
   */
  maxDelay?: number;
  /**
   * Told before each retry what failed, why, and how long the wait is (the
   * CLI prints it, so a wait is never silent). A refused connection, an
   * unknown host or a TLS failure is not retried: it fails at once.
   */
  onRetry?: (notice: RetryNotice) => void;
}

/**
 * How `uncompressedSize` learns a gzip layer's size (see
 * `FromRegistryOptions.uncompressedSizes`).
 *
 * @example
 * ```ts
 * import type { UncompressedSizes } from "./pull.ts";
 * const sizes: UncompressedSizes = "count";
 * ```
 */
export type UncompressedSizes = "trailer" | "count";

/**
 * Options for `fromRegistry`.
 *
 * @example A private registry over HTTP, with credentials
 * ```ts
 * import { fromRegistry, type FromRegistryOptions } from "./pull.ts";
 * const options: FromRegistryOptions = {
 *   platform: "linux/arm64",
 *   insecure: ["registry.lan:5000"],
 *   credentials: { registry: "registry.lan:5000", username: "ci", password: "token" },
 * };
 * const image = await fromRegistry("registry.lan:5000/team/app:1.2", options);
 * ```
 */
export interface FromRegistryOptions {
  /**
   * The platform to take from an index, `os/arch[/variant]`. When given, a
   * single-platform image must match it too.
   * @default {"linux/amd64"}
   */
  platform?: string;
  /**
   * Credentials, each bound to the registry host it is for:
   * `{ registry, username, password }`, a map keyed by registry host
   * (`{ "ghcr.io": { username, password } }`), or a function of the registry
   * host (`docker.io`, `ghcr.io`, `localhost:5000`) returning them. A bare
   * `{ username, password }` is refused with a `TypeError`: it would go to
   * whatever registry the image reference names. Where these give nothing
   * for the host, the docker config file is read.
   */
  credentials?: RegistryCredentialsOption;
  /**
   * The docker config file to take credentials from as docker does
   * (`credHelpers`, then `credsStore`, each running
   * `docker-credential-<name> get`; else `auths`, with `identitytoken`);
   * `false` never reads one. Read only where the runtime has `node:fs`;
   * helpers run only where it can run programs.
   * @default {"$DOCKER_CONFIG/config.json, else ~/.docker/config.json"}
   */
  dockerConfig?: string | false;
  /**
   * Registries (`host` or `host:port`) reached over plain HTTP. Loopback
   * registries (`localhost`, `127.0.0.0/8`, `[::1]`) always are.
   * @default {[]}
   */
  insecure?: readonly string[];
  /**
   * The `fetch` to use (a cache, a test double); `tls`, `certDir` and
   * `proxy` then only decide which registries are HTTPS, the rest is its
   * business.
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
  /**
   * CA certificates and a client certificate (PEM) per registry host
   * (`{ "registry.lan:5000": { ca, cert, key } }`). A host named here, or
   * with a `certs.d` directory, is reached over HTTPS, a loopback one too.
   * Looked at before `certDir` and the `certs.d` directories.
   */
  tls?: RegistryTlsOption;
  /**
   * A directory of `*.crt` (CAs), `*.cert` + `*.key` (a client certificate)
   * used for every registry instead of the `certs.d` directories (skopeo's
   * `--cert-dir`).
   */
  certDir?: string;
  /**
   * `certs.d` directories, each holding `HOST[:PORT]` directories of
   * `*.crt`, `*.cert`, `*.key` as docker reads them; the first with the
   * registry's is used. `false` reads none.
   * @default {["~/.config/containers/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d"]}
   */
  certsDirectories?: readonly string[] | false;
  /**
   * The proxy (`http://host:port`) registry requests go through, `false`
   * for none; by default `HTTPS_PROXY`/`HTTP_PROXY` (or lower case), on
   * every runtime alike. `NO_PROXY` names hosts reached directly either way.
   * Only a tunnel (CONNECT) passes the proxy for HTTPS: it never sees
   * credentials.
   */
  proxy?: string | false;
  /**
   * Mirrors of Docker Hub, tried in order before it for `docker.io` images,
   * as docker's `registry-mirrors` (`--registry-mirror`): `host[:port]`
   * (HTTPS, or HTTP for loopback and `insecure` hosts) or
   * `http[s]://host[:port]`. A mirror answering 404, 5xx, or not at all
   * gives way to the next; digests are checked whoever serves.
   * @default {[]}
   */
  registryMirrors?: readonly string[];
  /**
   * The registries.conf (containers-registries.conf(5)) whose
   * `[[registry]]` `prefix`/`location` and `[[registry.mirror]]`s apply;
   * `false` reads none.
   * @default {"$CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf, else /etc/containers/registries.conf"}
   */
  registriesConf?: string | false;
  /** Told which endpoint served a pull that had mirrors to try. */
  onMirror?: (answer: MirrorAnswer) => void;
  /** Retries and backoff. */
  retry?: RegistryRetryOptions;
  /**
   * Longest wait in milliseconds for response headers or the next chunk of
   * a body; a stalled transfer is then resumed like a broken one.
   * @default {60000}
   */
  timeout?: number;
  /**
   * How a gzip layer's uncompressed size (needed for `layers:
   * "uncompressed"`) is learnt. `"trailer"`: from the gzip ISIZE field, by a
   * 4-byte `Range` request (one blob download per layer; `save()` checks the
   * size and diff_id while streaming, so a wrong guess — a multi-member gzip,
   * or a layer over 4 GiB larger than its blob — fails the save instead of
   * writing a bad tarball). `"count"`: `save()` downloads and gunzips each
   * layer twice, once to count.
   * @default {"trailer"}
   */
  uncompressedSizes?: UncompressedSizes;
  /**
   * Fetch foreign (non-distributable) layers from their descriptor's `urls`.
   * Without it, an image with such layers is refused up front
   * (`FOREIGN_LAYER`), since their content lives outside the registry.
   * @default {false}
   */
  allowForeignLayers?: boolean;
}

/**
 * Which endpoint served a pull that had mirrors, and why those before it
 * did not.
 *
 * @example
 * ```ts
 * import type { MirrorAnswer } from "./pull.ts";
 * const answer: MirrorAnswer = {
 *   reference: "alpine:3.20", servedBy: "mirror.lan:5000", mirror: true, failures: [],
 * };
 * ```
 */
export interface MirrorAnswer {
  /** The image reference as given. */
  reference: string;
  /** `host[:port]` of the endpoint that served the manifest (and serves the blobs). */
  servedBy: string;
  /** Whether it is a mirror (else the registry itself). */
  mirror: boolean;
  /** One line per endpoint tried before: `host: error message`. */
  failures: string[];
}

/**
 * An image pulled from a registry.
 *
 * @example Pin what was pulled
 * ```ts
 * import { fromRegistry } from "./pull.ts";
 * const image = await fromRegistry("alpine:3.20");
 * console.log(image.reference); // docker.io/library/alpine@sha256:…
 * ```
 */
export interface RegistryImage extends Image {
  /** The image reference in full, pinned: `registry/repository@sha256:…`. */
  readonly reference: string;
  /** The digest of the image manifest pulled. */
  readonly digest: string;
  /** The index entry's platform, when the image reference named an index. */
  readonly platform?: Platform;
}

const GZIP_ISIZE = 2 ** 32;
const SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+";
const STARGZ = /stargz/i;

/**
 * Resolves an image reference, `[registry/]repo[:tag|@digest]` (Docker Hub
 * by default, `library/` for one-part names), to an image: the manifest
 * (from an index by `platform`), verified against the digest when pulled by
 * digest, and the config, both fetched now. Layers are streamed, and verified
 * by `save()`, only when it writes them; nothing is buffered.
 *
 * Errors are `DockerSaveError`s: `BAD_REFERENCE`, `UNAUTHORIZED`,
 * `MANIFEST_NOT_FOUND`, `PLATFORM_NOT_FOUND`, `DIGEST_MISMATCH`,
 * `FOREIGN_LAYER`, `REGISTRY_ERROR` (after retries), `BAD_MANIFEST`.
 *
 * @example Save an image from a registry to a file
 * ```ts
 * import { fromRegistry, saveToFile } from "../../../mod.ts";
 * const image = await fromRegistry("alpine:3.20", { platform: "linux/arm64" });
 * await saveToFile("alpine.tar", [["alpine:3.20", image]]);
 * ```
 *
 * @example An edge function that streams a tarball
 * ```ts
 * import { fromRegistry, save } from "../../../mod.ts";
 * export default {
 *   async fetch(request: Request): Promise<Response> {
 *     const ref = new URL(request.url).searchParams.get("image") ?? "alpine:3.20";
 *     try {
 *       // Auth, platform and manifest errors surface here, before the body.
 *       const image = await fromRegistry(ref);
 *       return new Response(save([[ref, image]]), {
 *         headers: { "content-type": "application/x-tar" },
 *       });
 *     } catch (error) {
 *       return new Response(String(error), { status: 502 });
 *     }
 *   },
 * };
 * ```
 */
export async function fromRegistry(
  reference: string,
  options: FromRegistryOptions = {},
): Promise<RegistryImage> {
  // Tag or digest -> (index -> platform)* -> image manifest.
  const connected = await connect(reference, options);
  const { registry } = connected;
  const { what } = registry;
  const wanted = options.platform ?? "linux/amd64";
  const { node, platform } = await followPlatform(
    { pulled: connected.pulled, digest: connected.digest },
    wanted,
    what,
    {
      isIndex: ({ pulled }) => isIndex(pulled),
      entries: ({ pulled }) =>
        Promise.resolve(indexEntries(pulled.bytes, what)),
      child: (entry) => {
        checkChosenEntry(entry, wanted, what);
        return pullChild(registry, entry);
      },
    },
  );
  const image = await imageOf(registry, node.pulled, node.digest, platform);
  if (options.platform !== undefined && platform === undefined) {
    checkImagePlatform(await image.rawConfig(), options.platform, what);
  }
  return image;
}

/**
 * Every platform of an image reference that names an index (a
 * multi-platform image): an `ImageIndex` whose children are pulled when
 * `save()` asks for them, each checked against the entry naming it; or the
 * image itself when the image reference names a single-platform image. A child
 * the registry does not have (404) is absent; choose with
 * `selectPlatforms`.
 *
 * @example Save every platform of an image
 * ```ts
 * import { fromRegistryIndex } from "./pull.ts";
 * import { save } from "../../save/save.ts";
 * const app = await fromRegistryIndex("ghcr.io/org/app:1.2", {
 *   credentials: { registry: "ghcr.io", username: "me", password: "…" },
 * });
 * save([["ghcr.io/org/app:1.2", app]], { format: "oci", layers: "compressed" });
 * ```
 */
export async function fromRegistryIndex(
  reference: string,
  options: FromRegistryOptions = {},
): Promise<RegistryImage | ImageIndex> {
  const { registry, pulled, digest } = await connect(reference, options);
  if (!isIndex(pulled)) {
    return await imageOf(registry, pulled, digest, undefined);
  }
  return indexOf(registry, pulled, 1);
}

// An index pulled from the registry, its children pulled on demand.
function indexOf(
  registry: Connection,
  pulled: Pulled,
  depth: number,
): ImageIndex {
  const what = `index of ${registry.what}`;
  const parsed = parseIndexManifest(pulled.bytes, what) as IndexManifest;
  // Each child is pulled once, however often it is asked for (the CLI's
  // progress view, then save()).
  const children = new Map<string, Promise<Image | ImageIndex | undefined>>();
  const pull = async (
    entry: Descriptor,
  ): Promise<Image | ImageIndex | undefined> => {
    let child: { pulled: Pulled; digest: string };
    try {
      child = await pullChild(registry, entry);
    } catch (error) {
      if (
        error instanceof DockerSaveError &&
        error.code === "MANIFEST_NOT_FOUND"
      ) return undefined;
      throw error;
    }
    if (isIndex(child.pulled)) {
      assertIndexDepth(depth + 1, what);
      return indexOf(registry, child.pulled, depth + 1);
    }
    return await imageOrArtifact<Image>(
      entry,
      () => imageOf(registry, child.pulled, child.digest, entry.platform),
      () => artifactOf(registry, child.pulled),
    );
  };
  return {
    rawIndex: () => Promise.resolve(pulled.bytes),
    index: () => Promise.resolve(structuredClone(parsed)),
    child: (entry) => {
      let pulling = children.get(entry.digest);
      if (!pulling) {
        pulling = pull(entry);
        children.set(entry.digest, pulling);
      }
      return pulling;
    },
  };
}

// An index child that is not an image (a buildx attestation): its manifest
// and blobs served as the registry has them; save() checks every one.
function artifactOf(
  { client, repository, what }: Connection,
  pulled: Pulled,
): Image {
  const value = parseArtifact(pulled.bytes, what);
  return {
    rawManifest: () => Promise.resolve(pulled.bytes),
    manifest: () => Promise.resolve(value),
    rawConfig: () =>
      client.blobBytes(
        repository,
        value.config,
        `config ${value.config?.digest} of ${what}`,
      ),
    openLayer: (layer) =>
      Promise.resolve(
        client.openBlob(repository, layer, `blob ${layer.digest} of ${what}`),
      ),
  };
}

// What every image and index pulled from one image reference shares.
interface Connection {
  ref: ReturnType<typeof parseReference>;
  /** The image reference named no tag or digest: `latest` is looked up. */
  tagless: boolean;
  what: string;
  client: RegistryClient;
  repository: string;
  options: FromRegistryOptions;
}

// The connection to the first endpoint (a mirror, else the registry) that
// serves what the image reference names, and what it served.
async function connect(
  reference: string,
  options: FromRegistryOptions,
): Promise<{ registry: Connection; pulled: Pulled; digest: string }> {
  assertCredentialsOption(options.credentials);
  const ref = parseReference(reference);
  const what = `"${reference}"`;
  const tagless = ref.digest === undefined &&
    !/:[^/]*$/.test(reference);
  const network = await RegistryNetwork.create(options);
  const endpoints = endpointsFor(
    ref.registry,
    ref.repository,
    ref.digest !== undefined,
    {
      registryMirrors: options.registryMirrors,
      conf: options.registriesConf === false
        ? []
        : await readRegistriesConf(options.registriesConf),
    },
  );
  const failures: string[] = [];
  for (const [i, endpoint] of endpoints.entries()) {
    const registry: Connection = {
      ref,
      tagless,
      what,
      client: await clientFor(endpoint, options, network),
      repository: endpoint.repository,
      options,
    };
    try {
      const { pulled, digest } = await pullReference(registry);
      if (endpoints.length > 1) {
        options.onMirror?.({
          reference,
          servedBy: endpoint.registry,
          mirror: endpoint.mirror,
          failures,
        });
      }
      return { registry, pulled, digest };
    } catch (error) {
      if (i === endpoints.length - 1 || !fallsBack(error)) throw error;
      failures.push(
        `${endpoint.registry}: ${(error as DockerSaveError).message}`,
      );
    }
  }
  throw new Error("unreachable: the registry is the last endpoint");
}

// The client of one endpoint. A host with certificates configured is
// HTTPS, loopback too (as docker does); a mirror is retried once, since the
// next endpoint is the better retry.
async function clientFor(
  endpoint: Endpoint,
  options: FromRegistryOptions,
  network: RegistryNetwork,
): Promise<RegistryClient> {
  const host = apiHost(endpoint.registry);
  const insecure = (options.insecure ?? []).map((entry) =>
    entry.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "").toLowerCase()
  );
  const secure = endpoint.scheme
    ? endpoint.scheme === "https"
    : await network.hasTls(host) || (
      !isLoopback(host) &&
      !insecure.includes(host.toLowerCase()) &&
      !insecure.includes(hostname(host))
    );
  const retry = options.retry ?? {};
  const attempts = retry.attempts ?? 5;
  return new RegistryClient({
    registry: endpoint.registry,
    host,
    secure,
    fetch: network.fetch,
    credentials: () => findCredentials(endpoint.registry, options),
    attempts: endpoint.mirror ? Math.min(attempts, 1) : attempts,
    delay: retry.delay ?? 500,
    maxDelay: retry.maxDelay ?? 10_000,
    timeout: options.timeout ?? 60_000,
    onRetry: retry.onRetry,
  });
}

// What the image reference names (a tag or a digest), checked against the
// digest when it names one.
async function pullReference(
  { client, repository, what, ref, tagless }: Connection,
): Promise<{ pulled: Pulled; digest: string }> {
  const pulled = await client.manifest(
    repository,
    ref.digest ?? ref.tag!,
    `manifest of ${what}`,
  ).catch((error) => {
    throw latestNoted(error, tagless);
  });
  const digest = await checkDigest(
    pulled.bytes,
    ref.digest ?? pulled.digest,
    `manifest of ${what}`,
  );
  return { pulled, digest };
}

// A tagless image reference's "not found", saying which tag was looked up (as
// docker pull prints "Using default tag: latest").
function latestNoted(error: unknown, tagless: boolean): unknown {
  if (
    !(error instanceof DockerSaveError) ||
    error.code !== "MANIFEST_NOT_FOUND" || !tagless
  ) return error;
  return new DockerSaveError(
    error.code,
    `${error.message}; no tag was given, so :latest was looked up`,
    { cause: error },
  );
}

// An index entry's manifest, checked against the entry (digest, size).
async function pullChild(
  { client, repository, what }: Connection,
  entry: Descriptor,
): Promise<{ pulled: Pulled; digest: string }> {
  assertSha256Digest(entry.digest, `an index entry of ${what}`);
  const child = `manifest ${entry.digest} of ${what}`;
  const pulled = await client.manifest(repository, entry.digest, child);
  const digest = await checkDigest(pulled.bytes, entry.digest, child);
  if (pulled.bytes.byteLength !== entry.size) {
    throw new DockerSaveError(
      "SIZE_MISMATCH",
      `Cannot verify ${child}: it has ${pulled.bytes.byteLength} bytes, expected ${entry.size}`,
    );
  }
  return { pulled, digest };
}

// The image of a pulled image manifest: its config fetched now, its layers
// streamed when save() writes them.
async function imageOf(
  registry: Connection,
  pulled: Pulled,
  digest: string,
  platform: Platform | undefined,
): Promise<RegistryImage> {
  const { client, repository, what, ref, options } = registry;
  if (
    pulled.mediaType?.startsWith(SCHEMA1) || schemaVersion(pulled) === 1
  ) {
    throw new DockerSaveError(
      "UNSUPPORTED_MEDIA_TYPE",
      `Cannot pull ${what}: it has a Docker schema 1 manifest, which is not supported`,
    );
  }
  const rawManifest = pulled.bytes;
  const manifest: Manifest = parseManifest(rawManifest, what);
  const foreign = manifest.layers.filter((layer) =>
    isForeignLayer(layer.mediaType) && layer.urls?.length
  );
  if (foreign.length && !options.allowForeignLayers) {
    throw new DockerSaveError(
      "FOREIGN_LAYER",
      `Cannot pull ${what}: layer ${
        foreign[0].digest
      } is foreign, to be fetched from ${
        untrustedText(foreign[0].urls!.join(", "), 400)
      }; allow it with allowForeignLayers (--allow-foreign-layers)`,
    );
  }
  const rawConfig = await client.blobBytes(
    repository,
    manifest.config,
    `config ${manifest.config.digest} of ${what}`,
  );

  const sizes = new Map<string, Promise<number | undefined>>();
  const layerWhat = (layer: Descriptor) => `layer ${layer.digest} of ${what}`;
  const image: RegistryImage = {
    reference: `${ref.registry}/${ref.repository}@${digest}`,
    digest,
    platform,
    rawManifest: () => Promise.resolve(rawManifest),
    manifest: () => Promise.resolve(manifest),
    rawConfig: () => Promise.resolve(rawConfig),
    openLayer: (layer) =>
      Promise.resolve(
        options.allowForeignLayers && isForeignLayer(layer.mediaType)
          ? client.openForeign(repository, layer, layerWhat(layer))
          : client.openBlob(repository, layer, layerWhat(layer)),
      ),
    layerAccess: (layer) => {
      // A foreign layer is read from its URLs, which we don't ask for
      // ranges: it takes the slow path (read and skip).
      const foreign = isForeignLayer(layer.mediaType) &&
        options.allowForeignLayers;
      return Promise.resolve({
        openBlobFrom: foreign ? undefined : (offset: number) =>
          Promise.resolve(
            client.openBlob(repository, layer, layerWhat(layer), offset),
          ),
        uncompressedSize: () => {
          if ((options.uncompressedSizes ?? "trailer") !== "trailer") {
            return Promise.resolve(undefined);
          }
          let size = sizes.get(layer.digest);
          if (!size) {
            size = trailerSize(client, repository, layer, layerWhat(layer));
            sizes.set(layer.digest, size);
          }
          return size;
        },
      });
    },
  };
  return image;
}

/**
 * The full, normalised form of a reference: `docker.io/library/alpine:latest`
 * for `alpine`. Throws `DockerSaveError` `BAD_REFERENCE`.
 *
 * @example
 * ```ts
 * import { normalizeReference } from "./pull.ts";
 * normalizeReference("alpine"); // "docker.io/library/alpine:latest"
 * ```
 */
export function normalizeReference(reference: string): string {
  return formatReference(parseReference(reference));
}

// The credentials for `registry` and no other: from the option, else from
// the docker config file.
async function findCredentials(
  registry: string,
  options: FromRegistryOptions,
): Promise<CredentialsFound> {
  const given = await credentialsFor(options.credentials, registry);
  if (given) return { credentials: given };
  if (options.dockerConfig === false) return {};
  return await dockerConfigCredentials(registry, {
    path: options.dockerConfig,
    timeout: options.timeout,
  });
}

interface Pulled {
  bytes: Uint8Array;
  mediaType?: string;
}

function parsed(pulled: Pulled): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(pulled.bytes));
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function isIndex(pulled: Pulled): boolean {
  return isIndexMediaType(pulled.mediaType) ||
    Array.isArray(parsed(pulled)?.manifests);
}

function schemaVersion(pulled: Pulled): unknown {
  return parsed(pulled)?.schemaVersion;
}

// sha256 of the bytes; checked against `expected` when it is a sha256 digest.
async function checkDigest(
  bytes: Uint8Array,
  expected: string | undefined,
  what: string,
): Promise<string> {
  const actual = `sha256:${await sha256Hex(bytes)}`;
  if (expected?.startsWith("sha256:") && actual !== expected) {
    throw new DockerSaveError(
      "DIGEST_MISMATCH",
      `Cannot verify ${what}: its bytes hash to ${actual}, expected ${
        untrustedText(expected)
      }`,
    );
  }
  return actual;
}

// An index's entries as they are; followPlatform chooses one by the one
// platform rule (src/model/platform.ts).
function indexEntries(bytes: Uint8Array, what: string): unknown[] {
  let index: unknown;
  try {
    index = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read index of ${what}: ${(error as Error).message}`,
    );
  }
  const manifests = (index as { manifests?: unknown })?.manifests;
  return Array.isArray(manifests) ? manifests : [];
}

// The entry chosen has a digest that can be verified and put into a URL
// path, and a size.
function checkChosenEntry(
  entry: Descriptor,
  wanted: string,
  what: string,
): void {
  assertSha256Digest(entry.digest, `the ${wanted} entry of ${what}`);
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) {
    throw new DockerSaveError(
      "BAD_MANIFEST",
      `Cannot read index of ${what}: the ${wanted} entry's size ${
        untrustedText(JSON.stringify(entry.size) ?? "undefined")
      } is not a byte count`,
    );
  }
}

// The gzip ISIZE trailer (uncompressed size mod 2^32), lifted to the
// smallest size not below what the blob's own size allows: deflate grows
// incompressible data by at most its stored-block overhead, which zlib's
// deflateBound puts at 1/4096 + 1/16384 + 1/2^25 of it (zlib stores blocks
// of ~16 KiB; Go's compress/flate of 64 KiB, less), plus the gzip header
// and trailer.
async function trailerSize(
  client: RegistryClient,
  repository: string,
  layer: Descriptor,
  what: string,
): Promise<number | undefined> {
  if (layerCompression(layer.mediaType) !== "gzip") return undefined;
  if (isForeignLayer(layer.mediaType) && layer.urls?.length) return undefined;
  // eStargz and similar layers are gzip members concatenated: the trailer
  // holds only the last member's size.
  if (Object.keys(layer.annotations ?? {}).some((key) => STARGZ.test(key))) {
    return undefined;
  }
  if (layer.size < 20) return undefined;
  const tail = await client.blobTail(repository, layer, 4, what);
  if (!tail) return undefined;
  const isize = new DataView(tail.buffer, tail.byteOffset, 4).getUint32(
    0,
    true,
  );
  const least = Math.max(
    0,
    Math.floor((layer.size - 1024) / (1 + 2 ** -12 + 2 ** -14 + 2 ** -25)),
  );
  const wraps = least > isize ? Math.ceil((least - isize) / GZIP_ISIZE) : 0;
  return isize + wraps * GZIP_ISIZE;
}
