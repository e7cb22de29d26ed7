/**
 * Content digests: `sha256:<hex>` strings, their hex part, and one-shot
 * SHA-256 with `crypto.subtle` (available on every runtime we target).
 *
 * @module
 */

import { DockerSaveError } from "./errors.ts";

/** A content digest, kept whole as `algorithm:hex` (e.g. `sha256:ab12…`). */
export type Digest = string;

const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * The part of a digest after its last `:`, as the reference's v1 conversion
 * takes it.
 *
 * @example
 * ```ts
 * import { hexOf } from "./digest.ts";
 * hexOf("sha256:abc"); // "abc"
 * ```
 */
export function hexOf(digest: Digest): string {
  const colon = digest.lastIndexOf(":");
  if (colon < 0) {
    throw new DockerSaveError(
      "BAD_DIGEST",
      `Cannot use digest "${digest}": it has no "algorithm:" prefix`,
    );
  }
  return digest.slice(colon + 1);
}

/**
 * Throws unless `digest` is a well-formed `sha256:` digest (64 lowercase hex),
 * the only algorithm our blob paths and verification support.
 *
 * @example
 * ```ts
 * import { assertSha256Digest } from "./digest.ts";
 * assertSha256Digest("sha256:" + "0".repeat(64), "layer 0");
 * ```
 */
export function assertSha256Digest(digest: unknown, what: string): void {
  if (typeof digest !== "string" || !SHA256_DIGEST.test(digest)) {
    throw new DockerSaveError(
      "BAD_DIGEST",
      `Cannot use ${what}: digest ${
        JSON.stringify(digest)
      } is not "sha256:" and 64 lowercase hex digits`,
    );
  }
}

/**
 * Lowercase hex SHA-256 of `bytes`, computed by `crypto.subtle`.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./digest.ts";
 * await sha256Hex(new TextEncoder().encode("abc")); // "ba7816bf…"
 * ```
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return toHex(new Uint8Array(hash));
}

/**
 * Lowercase hex of a byte array.
 *
 * @example
 * ```ts
 * import { toHex } from "./digest.ts";
 * toHex(new Uint8Array([0, 255])); // "00ff"
 * ```
 */
export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
