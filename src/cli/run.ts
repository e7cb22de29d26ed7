/**
 * The `docker-save` command, run: argv in, a tarball out (a file or stdout),
 * progress and errors on stderr, an exit status back.
 *
 * @module
 */

import process from "node:process";
import type { Image } from "../image.ts";
import { save, type SaveOptions } from "../save.ts";
import { saveToFile } from "../save_to_file.ts";
import type { ArchiveIndex } from "../sources/_archive_index.ts";
import { type CliArgs, parseArgs } from "./args.ts";
import { errorLine, UsageError } from "./errors.ts";
import { USAGE } from "./help.ts";
import { openSource } from "./open_source.ts";
import { type ProgressView, stderrProgress } from "./progress.ts";
import { type CliSource, parseSource } from "./source_grammar.ts";

/**
 * Runs the command; resolves to the exit status. Errors are printed as one
 * line on stderr.
 *
 * @example
 * ```ts
 * import { main } from "./run.ts";
 * const status = await main(["--help"]);
 * ```
 */
export async function main(argv: readonly string[]): Promise<number> {
  let progress: ProgressView | undefined;
  let args: CliArgs | undefined;
  try {
    args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(USAGE);
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
    for (const source of args.sources) sources.push(await parseSource(source));
    progress = args.quiet ? undefined : stderrProgress();
    const entries: [string, Image][] = [];
    const indexes = new Map<string, Promise<ArchiveIndex>>();
    for (const source of sources) {
      const [tag, image] = await openSource(source, args, indexes);
      await progress?.expect(image, tag);
      entries.push([tag, image]);
    }
    const options: SaveOptions = {
      verify: args.verify,
      layers: args.layers,
      format: args.format,
      onProgress: progress?.listener,
    };
    // A file can seek: each layer is then decompressed once.
    if (toStdout) await writeStdout(save(entries, options));
    else await saveToFile(args.output!, entries, options);
    progress?.finish();
    return 0;
  } catch (error) {
    progress?.finish();
    process.stderr.write(errorLine(error, args?.uncompressedSizes));
    return 1;
  }
}

async function writeStdout(stream: ReadableStream<Uint8Array>): Promise<void> {
  const out = process.stdout;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!out.write(value)) {
        await new Promise<void>((resolve, reject) => {
          const onError = (error: Error) => reject(error);
          out.once("error", onError);
          out.once("drain", () => {
            out.off("error", onError);
            resolve();
          });
        });
      }
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
}
