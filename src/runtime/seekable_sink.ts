/**
 * What a tarball is written to when it can seek (a file): `saveToFile()`
 * appends to it and patches headers in place. Its own file, so the writers
 * (`write.ts`, `positional_write.ts`) and the file sink share it without
 * importing each other.
 *
 * @module
 */

/**
 * What `writePlanSeekable` writes to: a file it appends to and may patch.
 * Each call waits for the one before; `write` may return before its bytes
 * are on disk (one write in flight), `writeAt` and `truncate` after.
 */
export interface SeekableSink {
  /** Appends bytes at the end. */
  write(bytes: Uint8Array): Promise<void>;
  /** Overwrites bytes already written, at `position`. */
  writeAt(position: number, bytes: Uint8Array): Promise<void>;
  /** Cuts the file to `length` bytes; later writes append from there. */
  truncate(length: number): Promise<void>;
  /** Waits until every write is done. */
  flush(): Promise<void>;
}
