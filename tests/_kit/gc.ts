/**
 * A stand-in for V8's `gc` (exposed by `--expose-gc`), to see which
 * collections the code under test asks for.
 *
 * @module
 */

/**
 * Runs `body` with a `globalThis.gc` that records each call's `type`, then
 * puts back what was there; returns the types asked for, sorted.
 *
 * @example
 * ```ts
 * import { collectionsAsked } from "../_kit/gc.ts";
 * const types = await collectionsAsked(() => {});
 * ```
 */
export async function collectionsAsked(
  body: () => unknown,
): Promise<string[]> {
  const runtime = globalThis as { gc?: unknown };
  const saved = Object.getOwnPropertyDescriptor(runtime, "gc");
  const asked: string[] = [];
  Object.defineProperty(runtime, "gc", {
    value: (options: { type: string }) => void asked.push(options.type),
    configurable: true,
    writable: true,
  });
  try {
    await body();
  } finally {
    if (saved) Object.defineProperty(runtime, "gc", saved);
    else delete runtime.gc;
  }
  return asked.sort();
}
