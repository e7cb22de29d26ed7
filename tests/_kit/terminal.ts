/**
 * What a terminal shows after a program wrote `text` to it: the escape
 * sequences the CLI's live progress view uses (cursor up to a line's start
 * `ESC [ n F`, clear the line `ESC [ 2 K`, clear below `ESC [ 0 J`) applied
 * to a screen of lines, so a test can check what a person sees.
 *
 * @module
 */

/** The screen's lines after `text` (carriage returns dropped). */
export function screenOf(text: string): string[] {
  const lines: string[] = [""];
  let row = 0;
  // The terminal's escape sequences, on purpose.
  // deno-lint-ignore no-control-regex
  const pattern = /\x1b\[(\d*)([A-Z])|\n|[^\x1b\n]+/g;
  for (const [token, n, op] of text.replaceAll("\r", "").matchAll(pattern)) {
    if (token === "\n") {
      row++;
      lines[row] ??= "";
    } else if (op === "F") row = Math.max(0, row - Number(n || 1));
    else if (op === "K") lines[row] = "";
    else if (op === "J") lines.splice(row, Infinity, "");
    else if (op === undefined) lines[row] += token;
  }
  return lines.filter((line, i) => line !== "" || i < row);
}
