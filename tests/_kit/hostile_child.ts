/**
 * One hostile-file case, run as a child process by
 * tests/integration/hostile_files.test.ts
 * (through `runBounded`, so a hang or a memory blow-up is killed): reads a
 * source, saves it, and prints one JSON line with what happened.
 *
 *   layout DIR                  fromOciLayout(DIR), saved
 *   layouts DIR...              fromOciLayout of each at once, then a readFile
 *   range DIR FROM MARK         saveResponse(), Range "bytes=FROM-"
 *   docker-archive PATH         fromDockerArchive(PATH), saved
 *   oci-archive PATH            fromOciArchive(PATH), saved
 *
 * @module
 */

import process from "node:process";
import { readFile } from "node:fs/promises";
import { DockerSaveError } from "../../src/model/errors.ts";
import type { Image } from "../../src/model/image.ts";
import { save } from "../../src/save/save.ts";
import { saveResponse, saveSize } from "../../src/save/response.ts";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import { fromDockerArchive } from "../../src/sources/archive/docker_archive.ts";
import { fromOciArchive } from "../../src/sources/archive/oci_archive.ts";
import { readAll } from "./bytes.ts";
import { concatBytes } from "../../src/util/streams.ts";

/** What a case printed. */
export interface ChildOutcome {
  outcome: "saved" | "error";
  name?: string;
  code?: string;
  message?: string;
  status?: number;
  length?: number;
  leaked?: boolean;
  results?: ChildOutcome[];
  size?: number;
}

function failed(error: unknown): ChildOutcome {
  return {
    outcome: "error",
    name: (error as Error)?.name,
    code: error instanceof DockerSaveError ? error.code : undefined,
    message: (error as Error)?.message ?? String(error),
  };
}

async function attempt(work: () => Promise<unknown>): Promise<ChildOutcome> {
  try {
    await work();
    return { outcome: "saved" };
  } catch (error) {
    return failed(error);
  }
}

async function main(): Promise<ChildOutcome> {
  const [kind, ...args] = process.argv.slice(2);
  const saveAll = async (image: Image) => {
    await readAll(save([["hostile/app:v1", image]]));
  };
  switch (kind) {
    case "layout":
      return attempt(async () => saveAll(await fromOciLayout(args[0])));
    case "layouts": {
      const results = await Promise.all(
        args.map((dir) => attempt(() => fromOciLayout(dir))),
      );
      // The thread pool is free again: an unrelated read completes.
      await readFile(new URL(import.meta.url));
      return { outcome: "saved", results };
    }
    case "range": {
      const [dir, from, mark] = args;
      try {
        const image = await fromOciLayout(dir);
        const entries: [string, Image][] = [["hostile/app:v1", image]];
        const options = { layers: "compressed" } as const;
        const size = await saveSize(entries, options);
        const response = await saveResponse(
          new Request("http://127.0.0.1/", {
            headers: { range: `bytes=${from}-` },
          }),
          entries,
          options,
        );
        // Whatever the body delivered before an error counts.
        const chunks: Uint8Array[] = [];
        let error: unknown;
        try {
          for await (const chunk of response.body!) chunks.push(chunk);
        } catch (e) {
          error = e;
        }
        const body = concatBytes(chunks);
        return {
          ...(error ? failed(error) : { outcome: "saved" }),
          status: response.status,
          length: body.byteLength,
          leaked: new TextDecoder().decode(body).includes(mark),
          size,
        };
      } catch (error) {
        return failed(error);
      }
    }
    case "docker-archive":
      return attempt(async () => saveAll(await fromDockerArchive(args[0])));
    case "oci-archive":
      return attempt(async () => saveAll(await fromOciArchive(args[0])));
    default:
      throw new TypeError(`unknown case "${kind}"`);
  }
}

console.log(JSON.stringify(await main()));
process.exit(0);
