/**
 * Lazy, memoised `import("node:…")`: the one place that asks whether the
 * runtime has Node's built-in modules. Edge runtimes and browsers get
 * `undefined` and take the web fallbacks.
 *
 * @module
 */

const cache = new Map<string, Promise<unknown>>();

/**
 * Imports a `node:` module once, or resolves to `undefined` where the runtime
 * has none.
 *
 * @example
 * ```ts
 * import { importNode } from "./_import.ts";
 * const zlib = await importNode<typeof import("node:zlib")>("node:zlib");
 * if (zlib) zlib.gzipSync(new Uint8Array(1));
 * ```
 */
export function importNode<T>(
  specifier: `node:${string}`,
): Promise<T | undefined> {
  let module = cache.get(specifier);
  if (!module) {
    // A variable specifier keeps bundlers from resolving node: for browsers.
    const name: string = specifier;
    module = import(name).catch(() => undefined);
    cache.set(specifier, module);
  }
  return module as Promise<T | undefined>;
}
