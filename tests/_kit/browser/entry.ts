/**
 * The browser test's bundle entry (bundled by esbuild for
 * `platform: "browser"` in tests/integration/browser.test.ts): it exposes
 * `globalThis.dockerSave`, which the page calls to save images with the
 * library's web paths only (no `node:` module exists in a browser).
 *
 * @module
 */

import { fromMemory, save } from "../../../mod.ts";
import worker from "../../../examples/worker.ts";

/** What one run in the page reports. */
export interface PageResult {
  /** sha256 hex of the tarball, by `crypto.subtle`. */
  sha256: string;
  /** Its byte length. */
  size: number;
}

async function digest(stream: ReadableStream<Uint8Array>): Promise<PageResult> {
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return {
    sha256: Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join(""),
    size: bytes.byteLength,
  };
}

/**
 * Fetches an OCI layout's manifest, config and layer blobs from `base` (a
 * URL ending in `/`), makes an in-memory image of them and saves it.
 */
async function saveLayout(
  base: string,
  ref: string,
  tag: string,
): Promise<PageResult> {
  const blob = async (digest: string) => {
    const response = await fetch(`${base}blobs/sha256/${digest.slice(7)}`);
    if (!response.ok) throw new Error(`${digest}: ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const index = await (await fetch(`${base}index.json`)).json();
  const entry = index.manifests.find((
    m: { annotations?: Record<string, string> },
  ) => m.annotations?.["org.opencontainers.image.ref.name"] === ref);
  const rawManifest = await blob(entry.digest);
  const manifest = JSON.parse(new TextDecoder().decode(rawManifest));
  const blobs = new Map<string, Uint8Array>();
  for (const layer of manifest.layers) {
    blobs.set(layer.digest, await blob(layer.digest));
  }
  const image = fromMemory({
    manifest: rawManifest,
    config: await blob(manifest.config.digest),
    blobs,
  });
  return await digest(save([[tag, image]]));
}

/** Calls the worker example's `fetch` in the page. */
async function fetchWorker(url: string): Promise<PageResult> {
  const response = await worker.fetch(new Request(url));
  if (!response.ok) throw new Error(`worker answered ${response.status}`);
  return await digest(response.body!);
}

/** Whether a `node:` module can be imported here (it must not). */
async function canImportNode(): Promise<boolean> {
  const name: string = "node:zlib";
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

/** Modules the bundle's probe saw evaluated (fflate, @noble/hashes). */
function loaded(): string[] {
  return [
    ...((globalThis as { __dockerSaveLoaded?: string[] }).__dockerSaveLoaded ??
      []),
  ];
}

(globalThis as Record<string, unknown>).dockerSave = {
  saveLayout,
  fetchWorker,
  canImportNode,
  loaded,
};
