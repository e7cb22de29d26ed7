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

export * from "./src/save.ts";
export * from "./src/save_to_file.ts";
export * from "./src/save_response.ts";
export * from "./src/image.ts";
export * from "./src/image_index.ts";
export * from "./src/layer.ts";
export * from "./src/v1_form.ts";
export * from "./src/errors.ts";
export * from "./src/tag.ts";
export * from "./src/digest.ts";
export * from "./src/sources/memory.ts";
export * from "./src/sources/oci_layout.ts";
export type { FileSystem } from "./src/runtime/fs.ts";
export * from "./src/sources/docker_archive.ts";
export * from "./src/sources/oci_archive.ts";
export * from "./src/sources/registry.ts";
