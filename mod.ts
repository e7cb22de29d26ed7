/**
 * docker-save writes `docker save`-compatible tarballs as one streaming
 * `ReadableStream<Uint8Array>`, byte-identical to containerregistry's
 * `multi_image_tarball`, on Deno, Bun, Node and edge runtimes.
 *
 * ```ts
 * import { fromOciLayout, save } from "./mod.ts";
 * const image = await fromOciLayout("./oci", "app");
 * const tar = save([["registry.example.com/app:v1", image]]);
 * // return new Response(tar);
 * await tar.pipeTo(new WritableStream());
 * ```
 *
 * The names below are the whole public API, grouped by what a user does;
 * `tests/unit/public_api.test.ts` pins them, so a change to the API shows as a
 * diff there. The command line is the `./cli` export (`src/cli.ts`).
 *
 * @module
 */

// --- Writing a tarball --------------------------------------------------------
export {
  save,
  type SaveEntries,
  type SaveFormat,
  type SaveOptions,
} from "./src/save/save.ts";
export type { LayerMode } from "./src/save/options.ts";
export type { ProgressListener, ProgressUpdate } from "./src/save/progress.ts";
export { saveToFile, type WriteFileOptions } from "./src/save/to_file.ts";
export { saveResponse, saveSize } from "./src/save/response.ts";

// --- Where images come from ---------------------------------------------------
export {
  fromOciLayout,
  fromOciLayoutIndex,
  type FromOciLayoutOptions,
} from "./src/sources/oci_layout.ts";
export {
  fromOciArchive,
  fromOciArchiveIndex,
  type FromOciArchiveOptions,
  indexOciArchive,
} from "./src/sources/archive/oci_archive.ts";
export {
  type ArchiveFileSystem,
  type ArchiveIndex,
  type ArchiveMember,
  type DockerArchiveImage,
  fromDockerArchive,
  type FromDockerArchiveOptions,
  indexDockerArchive,
} from "./src/sources/archive/docker_archive.ts";
export {
  fromRegistry,
  fromRegistryIndex,
  type FromRegistryOptions,
  type MirrorAnswer,
  normalizeReference,
  type RegistryCredentials,
  type RegistryCredentialsOption,
  type RegistryHostCredentials,
  type RegistryImage,
  type RegistryRetryOptions,
  type RegistryTls,
  type RegistryTlsOption,
  type RetryNotice,
  type UncompressedSizes,
} from "./src/sources/registry/pull.ts";
export {
  buildImage,
  type BuildImageOptions,
  fromMemory,
  type MemoryImageParts,
} from "./src/sources/memory.ts";
export type { ByteRange, FileSystem } from "./src/runtime/fs.ts";

// --- The image contract (for writing a source of your own) -------------------
export {
  type Descriptor,
  type Image,
  type LayerAccess,
  type LayerCompression,
  type Manifest,
  MEDIA_TYPES,
  type Platform,
} from "./src/model/image.ts";
export {
  type ByteSource,
  describeLayer,
  type LayerDescription,
  wrapImage,
} from "./src/model/layer.ts";
export {
  hasV1Form,
  type ImageWithV1Form,
  type V1Form,
  type V1FormLayer,
} from "./src/model/v1_form.ts";

// --- Multi-platform images ----------------------------------------------------
export {
  buildIndex,
  type ImageIndex,
  type IndexChild,
  type IndexManifest,
  isImageIndex,
  type PlatformSelection,
  selectPlatforms,
} from "./src/model/image_index.ts";

// --- Errors -------------------------------------------------------------------
export {
  DockerSaveError,
  type DockerSaveErrorCode,
} from "./src/model/errors.ts";
