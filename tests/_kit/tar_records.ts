/**
 * Raw tar records for hostile-archive tests: ustar headers with any type
 * flag, PAX and GNU long-name records of any size, built by hand so that
 * they can be wrong in every way a writer would refuse.
 *
 * @module
 */

import { concat } from "./bytes.ts";

const encoder = new TextEncoder();

/** Two zero blocks: the end of a tar. */
export const TAR_END = new Uint8Array(1024);

/** How `tarHeader` writes the size field. */
export type SizeField = "octal" | "base-256" | "garbage";

/** A ustar header block (checksummed unless `badChecksum`). */
export function tarHeader(
  name: string,
  size: number,
  flag = "0",
  options: { sizeField?: SizeField; badChecksum?: boolean } = {},
): Uint8Array {
  const block = new Uint8Array(512);
  const put = (text: string, at: number) => block.set(encoder.encode(text), at);
  put(name.slice(0, 100), 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  const field = options.sizeField ?? "octal";
  if (field === "octal") put(size.toString(8).padStart(11, "0") + "\0", 124);
  else if (field === "garbage") put("12x4\0", 124);
  else {
    block[124] = 0x80;
    for (let i = 135, n = size; i > 124; i--, n = Math.floor(n / 256)) {
      block[i] = n % 256;
    }
  }
  put("00000000000\0", 136);
  put(flag, 156);
  put("ustar\u000000", 257);
  put("        ", 148);
  const sum = block.reduce((a, b) => a + b, 0) + (options.badChecksum ? 1 : 0);
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return block;
}

/** A header and its body, padded to whole blocks. */
export function tarRecord(
  name: string,
  body: Uint8Array,
  flag = "0",
): Uint8Array {
  return concat([
    tarHeader(name, body.byteLength, flag),
    body,
    new Uint8Array((512 - body.byteLength % 512) % 512),
  ]);
}

/** A PAX body of one well-formed record, `key=value`. */
export function paxRecord(key: string, value: string): Uint8Array {
  const rest = ` ${key}=${value}\n`;
  const bytes = encoder.encode(rest).byteLength;
  let length = bytes;
  while (String(length).length + bytes !== length) {
    length = String(length).length + bytes;
  }
  return encoder.encode(`${length}${rest}`);
}
