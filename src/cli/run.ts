/**
 * The `docker-save` command, run: argv in, a tarball out (a file or stdout),
 * progress and errors on stderr, an exit status back.
 *
 * @module
 */

import process from "node:process";
import type { Image } from "../model/image.ts";
import {
  collectDroppedBuffers,
  releaseChunk,
} from "../runtime/chunk_release.ts";
import type { ImageIndex } from "../model/image_index.ts";
import { save, type SaveOptions } from "../save/save.ts";
import { saveToFile } from "../save/to_file.ts";
import { checkOutputPath } from "../save/output_path.ts";
import {
  onTerminationSignal,
  SIGNAL_EXIT_STATUS,
  type TerminationSignal,
} from "../runtime/signals.ts";
import type { ArchiveIndex } from "../sources/archive/archive_index.ts";
import type { RetryNotice } from "../sources/registry/pull.ts";
import { type CliArgs, parseArgs } from "./args.ts";
import { credentialsForSources } from "./credentials.ts";
import { errorLine, UsageError } from "./errors.ts";
import { USAGE } from "./help.ts";
import { VERSION } from "./version.ts";
import { openSource } from "./open_source.ts";
import { withPathHint } from "./path_hint.ts";
import { type ProgressView, stderrProgress } from "./stderr_progress.ts";
import { type CliSource, parseSource } from "./source_grammar.ts";

/**
 * Runs the command; resolves to the exit status. Errors are printed as one
 * line on stderr. On SIGINT or SIGTERM the output file's temporary file is
 * removed and the process exits with 130 or 143 (a second signal exits at
 * once).
 *
 * @example
 * ```ts
 * import { main } from "./run.ts";
 * const status = await main(["--help"]);
 * ```
 */
export async function main(argv: readonly string[]): Promise<number> {
  // The command owns its process: on Node 20 it may ask V8 to collect the
  // buffers it drops (runtime/chunk_release.ts); a library never does.
  collectDroppedBuffers(true);
  const interrupt = new AbortController();
  let heard!: (signal: TerminationSignal) => void;
  const interrupted = new Promise<TerminationSignal>((resolve) => {
    heard = resolve;
  });
  const stopListening = onTerminationSignal((signal) => {
    if (interrupt.signal.aborted) process.exit(SIGNAL_EXIT_STATUS[signal]);
    interrupt.abort(new Error(`interrupted by ${signal}`));
    heard(signal);
  });
  const output: Output = {};
  try {
    const outcome = await Promise.race([
      run(argv, interrupt.signal, output),
      interrupted,
    ]);
    if (typeof outcome === "number") return outcome;
    // The write (if it started) removes its temporary file on the abort;
    // anything else in flight (a stalled request) is left to the exit.
    // The view's last frame says so at once (no ETA left on the screen).
    output.progress?.finish("interrupted");
    await output.writing?.catch(() => {});
    process.stderr.write(`docker-save: interrupted by ${outcome}\n`);
    return process.exit(SIGNAL_EXIT_STATUS[outcome]);
  } finally {
    stopListening();
  }
}

/** The tarball's write, once it has started, and its progress view. */
interface Output {
  writing?: Promise<void>;
  progress?: ProgressView;
}

async function run(
  argv: readonly string[],
  signal: AbortSignal,
  output: Output,
): Promise<number> {
  let progress: ProgressView | undefined;
  let args: CliArgs | undefined;
  try {
    args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (args.version) {
      process.stdout.write(`docker-save ${VERSION}\n`);
      return 0;
    }
    if (args.sources.length === 0) throw new UsageError("no SOURCE given");
    const toStdout = args.output === undefined || args.output === "-";
    if (args.output === undefined && process.stdout.isTTY) {
      throw new UsageError(
        "refusing to write a tarball to a terminal; use -o FILE or redirect stdout",
      );
    }
    const sources: CliSource[] = [];
    for (const source of args.sources) {
      sources.push(
        await parseSource(source).catch(async (error) => {
          throw await withPathHint(source, error);
        }),
      );
    }
    const found = credentialsForSources(
      args.creds,
      sources.flatMap((s) => s.kind === "registry" ? [s.reference] : []),
    );
    if ("ambiguous" in found) {
      throw new UsageError(
        `--creds USER:PASS is for one registry, but the sources name ${
          found.ambiguous.join(", ")
        }: give --creds HOST=USER:PASS for each`,
      );
    }
    // Before the first request: a directory, a device or a missing
    // directory fails now, not after the download.
    if (!toStdout) await checkOutputPath(args.output!);
    progress = output.progress = args.quiet ? undefined : stderrProgress({
      asStored: args.layers === "compressed" || args.format !== "docker",
    });
    const view = progress;
    const entries: [string, Image | ImageIndex][] = [];
    const indexes = new Map<string, Promise<ArchiveIndex>>();
    for (const [i, source] of sources.entries()) {
      const [tag, image] = await openSource(
        source,
        args,
        indexes,
        found.credentials,
        args.quiet ? undefined : (notice) => view?.note(retryLine(notice)),
      ).catch(async (error) => {
        // `app.tar` read as an image reference: say which prefix reads it.
        throw source.kind === "registry"
          ? await withPathHint(args!.sources[i], error)
          : error;
      });
      await progress?.expect(image, tag);
      entries.push([tag, image]);
    }
    const options: SaveOptions = {
      verify: args.verify,
      layers: args.layers,
      format: args.format,
      defaultPlatform: args.defaultPlatform,
      onProgress: progress?.listener,
      concurrency: args.concurrency,
    };
    // A file can seek: each layer is then decompressed once.
    output.writing = toStdout
      ? writeStdout(save(entries, options), signal)
      : saveToFile(args.output!, entries, { ...options, signal });
    await output.writing;
    progress?.finish("done");
    return 0;
  } catch (error) {
    // Interrupted: main() says so.
    if (signal.aborted) return 1;
    progress?.finish("failed");
    process.stderr.write(errorLine(error, args?.uncompressedSizes));
    return 1;
  }
}

// A registry request about to be retried: one line, so a wait is never
// silent (the reason is the registry's or the runtime's text, escaped). It
// goes through the view, which prints it above its live rows.
function retryLine(notice: RetryNotice): string {
  return `docker-save: ${notice.what}: ${notice.reason}; retry ${notice.retry} of ${notice.retries} in ${
    (notice.wait / 1000).toFixed(1)
  } s\n`;
}

async function writeStdout(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  const out = process.stdout;
  const reader = stream.getReader();
  // An abort cancels the stream, which ends a read in progress at once.
  // (Not a Promise.race against one long-lived "aborted" promise per chunk:
  // each race leaves a reaction on it that keeps that chunk alive, 210 MiB
  // for a 256 MiB layer.)
  const onAbort = () => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  // A closed pipe (`| head -c 1000`, a reader that exits) ends the save:
  // every source is cancelled at once, even one stalled mid-read. Without a
  // listener, the runtime's 'error' event is a crash with a stack. It stays
  // attached: a late EPIPE must not crash either.
  let closed: OutputClosed | undefined;
  out.on("error", (error) => {
    closed ??= new OutputClosed(error);
    reader.cancel(closed).catch(() => {});
  });
  try {
    // One write in flight, waited for by its callback: `write()`'s return
    // value is no backpressure where stdout is a file.
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      const { done, value } = await reader.read();
      signal.throwIfAborted();
      if (closed) throw closed;
      await writing;
      if (done) break;
      writing = new Promise<void>((resolve, reject) => {
        out.write(value, (error) => {
          if (error) return reject(closed ??= new OutputClosed(error));
          releaseChunk(value); // written: nothing reads it again
          resolve();
        });
      });
      writing.catch(() => {}); // awaited (and rethrown) on the next turn
    }
  } catch (error) {
    // Not awaited: a stalled source may never settle its cancel.
    reader.cancel(error).catch(() => {});
    throw closed ?? error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Stdout was closed by its reader before the tarball was complete. */
class OutputClosed extends Error {
  constructor(cause: unknown) {
    const code = (cause as { code?: unknown })?.code;
    super(
      `stdout was closed before the tarball was complete${
        typeof code === "string" ? ` (${code})` : ""
      }`,
      { cause },
    );
  }
}
