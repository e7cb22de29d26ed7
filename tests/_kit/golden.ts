/**
 * The golden cases in tests/testdata: an OCI layout, which ref to save under
 * which tag, and the reference implementation's exact output.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import { fromOciLayout } from "../../src/sources/oci_layout.ts";
import type { Image } from "../../src/model/image.ts";

/** Folder of the test data. */
export const TESTDATA = new URL("../testdata/", import.meta.url).pathname;

/** One golden case. */
export interface GoldenCase {
  name: string;
  dir: string;
  save: { ref: string; tag: string }[];
  expected: Uint8Array;
}

/** Every golden case (folders with a case.json). */
export function goldenCases(): GoldenCase[] {
  return readdirSync(TESTDATA, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .filter((entry) => {
      try {
        readFileSync(`${TESTDATA}${entry.name}/case.json`);
        return true;
      } catch {
        return false;
      }
    })
    .map((entry) => {
      const dir = `${TESTDATA}${entry.name}`;
      const spec = JSON.parse(readFileSync(`${dir}/case.json`, "utf8"));
      return {
        name: entry.name,
        dir,
        save: spec.save,
        expected: new Uint8Array(readFileSync(`${dir}/expected.tar`)),
      };
    });
}

/** The `[tag, image]` pairs of a case. */
export async function goldenEntries(
  golden: GoldenCase,
): Promise<[string, Image][]> {
  const pairs: [string, Image][] = [];
  for (const { ref, tag } of golden.save) {
    pairs.push([tag, await fromOciLayout(`${golden.dir}/oci`, ref)]);
  }
  return pairs;
}
