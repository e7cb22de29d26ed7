/**
 * SIGINT and SIGTERM, heard the same way on Deno (`Deno.addSignalListener`),
 * Bun and Node (`process.on`), without importing `node:` modules; a no-op
 * where the runtime has neither (browsers, edge functions).
 *
 * @module
 */

/** The signals that ask a command to stop. */
export type TerminationSignal = "SIGINT" | "SIGTERM";

/** The exit status a shell gives a command stopped by each signal. */
export const SIGNAL_EXIT_STATUS: Readonly<Record<TerminationSignal, number>> = {
  SIGINT: 130,
  SIGTERM: 143,
};

// Only the part of each runtime's API in use.
interface DenoSignals {
  addSignalListener(signal: TerminationSignal, handler: () => void): void;
  removeSignalListener(signal: TerminationSignal, handler: () => void): void;
}
interface ProcessSignals {
  on(signal: TerminationSignal, handler: () => void): unknown;
  off(signal: TerminationSignal, handler: () => void): unknown;
}

/**
 * Calls `handler` on SIGINT or SIGTERM, in place of the runtime's default
 * (which ends the process at once), until the returned function is called.
 * The handler then decides when to exit.
 *
 * @example
 * ```ts
 * import { onTerminationSignal } from "./signals.ts";
 * const controller = new AbortController();
 * const stop = onTerminationSignal((signal) => controller.abort(signal));
 * // … work that watches controller.signal …
 * stop();
 * ```
 */
export function onTerminationSignal(
  handler: (signal: TerminationSignal) => void,
): () => void {
  const g = globalThis as { Deno?: DenoSignals; process?: ProcessSignals };
  const signals: TerminationSignal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => [signal, () => handler(signal)]) as [
    TerminationSignal,
    () => void,
  ][];
  // Deno's node:process emulation also hears signals, but its own API is the
  // one it documents.
  const target = g.Deno?.addSignalListener
    ? {
      add: g.Deno.addSignalListener.bind(g.Deno),
      remove: g.Deno.removeSignalListener.bind(g.Deno),
    }
    : g.process?.on
    ? {
      add: (s: TerminationSignal, h: () => void) => g.process!.on(s, h),
      remove: (s: TerminationSignal, h: () => void) => g.process!.off(s, h),
    }
    : undefined;
  if (!target) return () => {};
  for (const [signal, listener] of handlers) target.add(signal, listener);
  return () => {
    for (const [signal, listener] of handlers) target.remove(signal, listener);
  };
}
