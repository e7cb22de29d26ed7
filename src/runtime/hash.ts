/**
 * Incremental SHA-256 for streamed blobs: `node:crypto` where the runtime has
 * it (native in Node, Deno and Bun), `@noble/hashes` elsewhere. `crypto.subtle`
 * has no incremental API, so it only serves one-shot digests (`digest.ts`).
 *
 * @module
 */

import { importNode } from "./_import.ts";
import { toHex } from "../model/digest.ts";

/** An incremental hash: feed bytes, then read the hex digest once. */
export interface Hasher {
  /** Adds bytes. */
  update(bytes: Uint8Array): void;
  /** Lowercase hex of the digest; call once, after the last update. */
  hexDigest(): string;
}

/** Which implementation `createSha256` uses. */
export type HashBackend = "node" | "noble";

/**
 * Creates an incremental SHA-256 hasher, preferring `node:crypto`.
 *
 * @param backend force one implementation (tests use it for the fallback)
 * @example
 * ```ts
 * import { createSha256 } from "./hash.ts";
 * const hash = await createSha256();
 * hash.update(new TextEncoder().encode("abc"));
 * hash.hexDigest(); // "ba7816bf…"
 * ```
 */
export async function createSha256(backend?: HashBackend): Promise<Hasher> {
  if (backend !== "noble") {
    const nodeCrypto = await importNode<typeof import("node:crypto")>(
      "node:crypto",
    );
    if (nodeCrypto) {
      const hash = nodeCrypto.createHash("sha256");
      return {
        update: (bytes) => hash.update(bytes),
        hexDigest: () => hash.digest("hex"),
      };
    }
    if (backend === "node") {
      throw new Error("Cannot hash: node:crypto is missing");
    }
  }
  const { sha256 } = await import("@noble/hashes/sha2.js");
  const hash = sha256.create();
  return {
    update: (bytes) => hash.update(bytes),
    hexDigest: () => toHex(hash.digest()),
  };
}
