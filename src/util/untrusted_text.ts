/**
 * Text from outside (a registry's error message, a redirect target, a
 * platform name from an index) made safe to put into one of our messages:
 * control characters escaped, length bounded.
 *
 * @module
 */

// C0 controls, DEL, C1 controls, the line/paragraph separators, and the
// marks that reorder what a terminal shows (bidirectional overrides and
// isolates: text that reads differently from what it is).
const CONTROL =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` with control characters as `\xNN`/`\uNNNN` escapes (so an ESC, BEL
 * or CR from a remote server cannot act on a terminal), cut to `max`
 * characters with a final `…` (`Infinity`: not cut). The CLI passes
 * everything it prints through it.
 *
 * @example
 * ```ts
 * import { untrustedText } from "./untrusted_text.ts";
 * untrustedText("ok\u001b]52;c;AAAA\u0007"); // "ok\\x1b]52;c;AAAA\\x07"
 * untrustedText("a".repeat(300), 10); // "aaaaaaaaa…"
 * ```
 */
export function untrustedText(text: string, max = 200): string {
  const cut = text.length > max ? `${text.slice(0, max - 1)}…` : text;
  return cut.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
