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
 * @module
 */

export * from "./src/save/save.ts";
export * from "./src/save/to_file.ts";
export * from "./src/save/response.ts";
export * from "./src/model/image.ts";
export * from "./src/model/image_index.ts";
export * from "./src/model/layer.ts";
export * from "./src/model/v1_form.ts";
export * from "./src/model/errors.ts";
export * from "./src/model/tag.ts";
export * from "./src/model/digest.ts";
export * from "./src/sources/memory.ts";
export * from "./src/sources/oci_layout.ts";
export type { FileSystem } from "./src/runtime/fs.ts";
export * from "./src/sources/archive/docker_archive.ts";
export * from "./src/sources/archive/oci_archive.ts";
export * from "./src/sources/registry/pull.ts";
