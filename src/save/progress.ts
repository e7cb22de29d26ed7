/**
 * Progress as an observer of `save()` (after go-containerregistry's
 * `v1.Update`): the layer stage reports how far each layer body has been
 * read, and whoever asked (`SaveOptions.onProgress`; the CLI's view) decides
 * what to show. Nothing about the bytes depends on it.
 *
 * @module
 */

/** How far one layer has been read. */
export interface ProgressUpdate {
  /** The tarball member being read, e.g. `<v1 id>/layer.tar`. */
  name: string;
  /** The layer blob's digest. */
  digest: string;
  /**
   * `"counting"`: a first pass reads the blob to learn the uncompressed
   * size (its bytes are blob bytes); `"writing"`: the member's body is being
   * written (its bytes are the member's).
   */
  phase: "counting" | "writing";
  /** Bytes read so far in this phase. */
  complete: number;
  /**
   * Bytes this phase reads in all: the blob's size when counting, the
   * member's when writing; `undefined` for a member whose size is learnt
   * by writing it (a seekable file): its `"done"` update's `complete` is
   * then its size.
   */
  total: number | undefined;
  /**
   * `"done"` once the phase read everything, `"failed"` if it stopped early
   * (an error, a cancel, or an end short of `total`).
   */
  state: "reading" | "done" | "failed";
}

/** Called with each `ProgressUpdate`; must not throw. */
export type ProgressListener = (update: ProgressUpdate) => void;

/**
 * `stream`, reporting each chunk read through it to `listener`: a first
 * update at 0, one per chunk, and a last one when it ends or fails.
 *
 * @example
 * ```ts
 * import { progressStream } from "./progress.ts";
 * const counted = progressStream(new Blob(["abc"]).stream(), console.log, {
 *   name: "x/layer.tar",
 *   digest: "sha256:…",
 *   phase: "writing",
 *   total: 3,
 * });
 * ```
 */
export function progressStream(
  stream: ReadableStream<Uint8Array>,
  listener: ProgressListener,
  what: Pick<ProgressUpdate, "name" | "digest" | "phase" | "total">,
): ReadableStream<Uint8Array> {
  let complete = 0;
  const tell = (state: ProgressUpdate["state"]) =>
    listener({ ...what, complete, state });
  const reader = stream.getReader();
  tell("reading");
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        tell("failed");
        throw error;
      }
      if (next.done) {
        // An end short of the total is not a finished read (the source was
        // cancelled under it); the size check downstream says why.
        const whole = what.total === undefined || complete === what.total;
        tell(whole ? "done" : "failed");
        return controller.close();
      }
      complete += next.value.byteLength;
      tell("reading");
      controller.enqueue(next.value);
    },
    cancel(reason) {
      tell("failed");
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
