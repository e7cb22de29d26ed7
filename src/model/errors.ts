/**
 * The one error class callers catch: bad input and failed verification.
 *
 * @module
 */

/** What went wrong, as a stable string a caller can switch on. */
export type DockerSaveErrorCode =
  | "BAD_TAG"
  | "EMPTY_INPUT"
  | "BAD_MANIFEST"
  | "BAD_CONFIG"
  | "LAYER_COUNT_MISMATCH"
  | "BLOB_NOT_FOUND"
  | "DIGEST_MISMATCH"
  | "SIZE_MISMATCH"
  // An uncompressed layer's length differs from the size promised for it up
  // front (a gzip trailer, a source's record): the tar header was wrong.
  | "UNCOMPRESSED_SIZE_MISMATCH"
  | "DIFF_ID_MISMATCH"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "BAD_DIGEST"
  | "BAD_LAYOUT"
  /**
   * An archive passes a bound on what reading it may cost: a tar name record
   * over 1 MiB, a name over 4096 characters, more members or name bytes
   * than one archive's index keeps.
   */
  | "ARCHIVE_LIMIT"
  | "BAD_LAYER"
  | "BAD_REFERENCE"
  | "UNAUTHORIZED"
  | "MANIFEST_NOT_FOUND"
  | "PLATFORM_NOT_FOUND"
  | "REGISTRY_ERROR"
  | "FOREIGN_LAYER"
  /** A kept v1 id names two different layers, or not the config's layer. */
  | "V1_ID_CONFLICT"
  /** The input cannot be written in the asked format (several platforms, docker). */
  | "UNSUPPORTED_FORMAT"
  /**
   * Credentials could not be found where they are configured: a docker
   * credential helper is not on `PATH`, failed, or answered nonsense.
   */
  | "BAD_CREDENTIALS"
  /**
   * A registry, token realm, redirect or foreign layer named a URL that may
   * not be fetched: not `http:`/`https:`, or `http:` for a registry not
   * allowed insecure.
   */
  | "BAD_URL"
  /**
   * The output file cannot be written: it is a directory, a device, a FIFO
   * or a socket, its directory is missing, or the file system refused.
   */
  | "BAD_OUTPUT"
  /** A registry's certificate is signed by a CA we do not trust. */
  | "TLS_UNKNOWN_CA"
  /** A registry's certificate does not name the host we asked. */
  | "TLS_HOSTNAME_MISMATCH"
  /** A registry's certificate has expired (or is not valid yet). */
  | "TLS_CERT_EXPIRED"
  /** A registry wants a client certificate, or refused the one we gave. */
  | "TLS_CLIENT_CERT_REQUIRED"
  /** A certificate directory or the `tls` option cannot be used. */
  | "BAD_TLS_CONFIG"
  /** A registries.conf cannot be read or parsed. */
  | "BAD_REGISTRIES_CONF"
  /** The proxy refused to open a tunnel (CONNECT) to a registry. */
  | "PROXY_REFUSED"
  /** A registry answered 429 with no requests left in its window. */
  | "RATE_LIMITED";

/**
 * An input or verification failure. The output stream of `save()` errors with
 * it; it never ends cleanly after one.
 *
 * @example Switch on the code
 * ```ts
 * import { DockerSaveError } from "./errors.ts";
 * try {
 *   throw new DockerSaveError("BAD_TAG", 'Cannot parse tag "A:b": bad');
 * } catch (e) {
 *   if (e instanceof DockerSaveError && e.code === "BAD_TAG") console.error(e.message);
 * }
 * ```
 */
export class DockerSaveError extends Error {
  /** Machine-readable reason. */
  readonly code: DockerSaveErrorCode;

  /**
   * Creates an error with a code, a message and an optional cause.
   *
   * @param code machine-readable reason
   * @param message "Cannot <action>: <state>", sentence case, no final period
   * @param options the underlying cause, if any
   */
  constructor(
    code: DockerSaveErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DockerSaveError";
    this.code = code;
  }
}
