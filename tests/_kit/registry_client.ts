/**
 * How the tests call `fromRegistry()`: options for quick retries and no
 * docker config, the test users, the golden image they push and pull, and
 * the tarball `save()` writes for one image.
 *
 * @module
 */

import type { Image } from "../../src/model/image.ts";
import { save, type SaveOptions } from "../../src/save/save.ts";
import type { FromRegistryOptions } from "../../src/sources/registry/pull.ts";
import {
  RegistryTransport,
  type TransportOptions,
} from "../../src/sources/registry/transport.ts";
import { readAll } from "./bytes.ts";
import { goldenCases } from "./golden.ts";

/** The golden case the registry tests push and pull. */
export const [basic] = goldenCases().filter((c) => c.name === "basic");
/** Its OCI layout. */
export const LAYOUT = `${basic.dir}/oci`;
/** Options for quick retries and no docker config. */
export const FAST: FromRegistryOptions = {
  retry: { delay: 1, maxDelay: 5 },
  dockerConfig: false,
};
/** A transport over the global `fetch`, plain HTTP allowed, no retries, short delays. */
export function fastTransport(
  options: Partial<TransportOptions> = {},
): RegistryTransport {
  return new RegistryTransport({
    fetch: globalThis.fetch,
    allowHttp: true,
    attempts: 0,
    delay: 1,
    maxDelay: 5,
    timeout: 5_000,
    ...options,
  });
}

/** A user of the test registries. */
export const USER = "alice";
/** Their password (with a colon and a space). */
export const PASS = "s3cret:with colon";
/** A second user of the test registries. */
export const BOB = "bob";
/** Their password. */
export const BOB_PASS = "hunter2-secret";

/** The `Authorization` value of Basic credentials. */
export const basicAuth = (user: string, pass: string): string =>
  `Basic ${btoa(`${user}:${pass}`)}`;

/** The tarball `save()` writes for one image. */
export async function saved(
  tag: string,
  image: Image,
  options?: SaveOptions,
): Promise<Uint8Array> {
  return await readAll(save([[tag, image]], options));
}
