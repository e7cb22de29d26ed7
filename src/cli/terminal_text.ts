/**
 * Text from outside (a registry's error message, an archive's tag, a file
 * name) made safe to print on a terminal.
 *
 * @module
 */

// C0 controls, DEL and C1 controls (a terminal acts on ESC, CSI, OSC, BEL,
// CR…), and the Unicode marks that reorder what is shown (bidirectional
// overrides and isolates).
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` with every control character and bidirectional mark shown as an
 * escape (`\x1b`, `\u202e`) instead of acting on the terminal: an OSC 52
 * sequence in a registry's message cannot write the clipboard, a CR cannot
 * print a fake "done" over the line. Used for everything the CLI prints.
 *
 * @example
 * ```ts
 * import { printable } from "./terminal_text.ts";
 * printable("bad\x1b[2Jtag"); // "bad\\x1b[2Jtag"
 * ```
 */
export function printable(text: string): string {
  return text.replace(UNSAFE, (char) => {
    const code = char.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
