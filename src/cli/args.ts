/**
 * The command line of `docker-save`, parsed: options and SOURCE arguments
 * (split later, by the SOURCE grammar).
 *
 * @module
 */

import type { LayerMode, SaveFormat } from "../save/save.ts";
import type {
  RegistryCredentials,
  UncompressedSizes,
} from "../sources/registry/pull.ts";
import { type CredsValue, parseCreds } from "./credentials.ts";
import { UsageError } from "./errors.ts";
import type { PlatformSelection } from "../model/image_index.ts";

/**
 * Parsed command line.
 *
 * @example
 * ```ts
 * import { type CliArgs, parseArgs } from "./args.ts";
 * const args: CliArgs = parseArgs(["-q", "alpine"]);
 * ```
 */
export interface CliArgs {
  /** `-o` value; `undefined` when not given. */
  output?: string;
  /** The SOURCE arguments. */
  sources: string[];
  /** `--no-verify`. */
  verify: boolean;
  /** `--layers`. */
  layers: LayerMode;
  /** `--format`. */
  format: SaveFormat;
  /** `--help`. */
  help: boolean;
  /** `--version` or `-v`. */
  version: boolean;
  /**
   * `--platform`: one `os/arch[/variant]`, a comma-separated list, `all` or
   * `available`; `undefined` when not given.
   */
  platform?: string;
  /** `--default-platform`; `undefined` when not given. */
  defaultPlatform?: string;
  /** `--quiet`. */
  quiet: boolean;
  /** The bare `--creds USER:PASS`, split at the first colon (also in `creds`). */
  credentials?: RegistryCredentials;
  /** Every `--creds`, with the host of `HOST=USER:PASS` (see credentials.ts). */
  creds: CredsValue[];
  /** `--authfile`: the docker config file credentials come from. */
  authfile?: string;
  /** Every `--insecure-registry`. */
  insecure: string[];
  /** `--allow-foreign-layers`. */
  allowForeignLayers: boolean;
  /** `--uncompressed-sizes`. */
  uncompressedSizes: UncompressedSizes;
  /** `--cert-dir`: CAs and a client certificate for every registry. */
  certDir?: string;
  /** `--proxy`: the proxy registry requests go through. */
  proxy?: string;
  /** Every `--registry-mirror`: Docker Hub's mirrors. */
  registryMirrors: string[];
  /** `--registries-conf`: the registries.conf to read. */
  registriesConf?: string;
  /** `--concurrency`: layers downloaded at once; `undefined` for the default. */
  concurrency?: number;
}

const PLATFORM = /^[^/\s,]+\/[^/\s,]+(\/[^/\s,]+)?$/;

/**
 * What `--platform` asks for: one platform (an image, as without the flag),
 * or several (an image index, with `selectPlatforms`).
 *
 * @example
 * ```ts
 * import { platformSelection } from "./args.ts";
 * platformSelection("linux/amd64,linux/arm64"); // ["linux/amd64", "linux/arm64"]
 * platformSelection("linux/arm64"); // undefined: one platform
 * ```
 */
export function platformSelection(
  platform: string | undefined,
): PlatformSelection | undefined {
  if (platform === "all" || platform === "available") return platform;
  const list = platform?.split(",") ?? [];
  return list.length > 1 ? list : undefined;
}

/**
 * Parses the command line (without the runtime and script names).
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * parseArgs(["-o", "a.tar", "--platform", "linux/arm64", "alpine:3.20"]);
 * // { output: "a.tar", platform: "linux/arm64", sources: ["alpine:3.20"], … }
 * ```
 */
export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    sources: [],
    verify: true,
    layers: "uncompressed",
    format: "docker",
    help: false,
    version: false,
    quiet: false,
    creds: [],
    insecure: [],
    registryMirrors: [],
    allowForeignLayers: false,
    uncompressedSizes: "trailer",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // --name VALUE or --name=VALUE
    const valueOf = (name: string): string | undefined => {
      if (arg === name) {
        if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
        return argv[++i];
      }
      return arg.startsWith(`${name}=`)
        ? arg.slice(name.length + 1)
        : undefined;
    };
    let value: string | undefined;
    if (arg === "-h" || arg === "--help") args.help = true;
    else if (arg === "-v" || arg === "--version") args.version = true;
    else if (arg === "--no-verify") args.verify = false;
    else if (arg === "-q" || arg === "--quiet") args.quiet = true;
    else if (arg === "--allow-foreign-layers") args.allowForeignLayers = true;
    else if ((value = valueOf("--platform")) !== undefined) {
      const list = value.split(",");
      if (
        value !== "all" && value !== "available" &&
        !list.every((one) => PLATFORM.test(one))
      ) {
        throw new UsageError(
          `--platform takes os/arch[/variant], a comma-separated list of them, all or available, not "${value}"`,
        );
      }
      args.platform = value;
    } else if ((value = valueOf("--default-platform")) !== undefined) {
      if (!PLATFORM.test(value)) {
        throw new UsageError(
          `--default-platform takes os/arch[/variant], not "${value}"`,
        );
      }
      args.defaultPlatform = value;
    } else if ((value = valueOf("--creds")) !== undefined) {
      // The value is a secret: never quoted in a message.
      const creds = parseCreds(value);
      if (!creds) {
        throw new UsageError("--creds takes USER:PASS or HOST=USER:PASS");
      }
      if (args.creds.some((c) => c.host === creds.host)) {
        throw new UsageError(
          creds.host === undefined
            ? "--creds USER:PASS is given twice"
            : `--creds ${creds.host}=… is given twice`,
        );
      }
      args.creds.push(creds);
      if (creds.host === undefined) {
        args.credentials = {
          username: creds.username,
          password: creds.password,
        };
      }
    } else if ((value = valueOf("--authfile")) !== undefined) {
      args.authfile = value;
    } else if ((value = valueOf("--insecure-registry")) !== undefined) {
      args.insecure.push(value);
    } else if ((value = valueOf("--cert-dir")) !== undefined) {
      args.certDir = value;
    } else if ((value = valueOf("--proxy")) !== undefined) {
      args.proxy = value;
    } else if ((value = valueOf("--registry-mirror")) !== undefined) {
      args.registryMirrors.push(value);
    } else if ((value = valueOf("--registries-conf")) !== undefined) {
      args.registriesConf = value;
    } else if ((value = valueOf("--uncompressed-sizes")) !== undefined) {
      if (value !== "trailer" && value !== "count") {
        throw new UsageError(
          `--uncompressed-sizes takes trailer or count, not "${value}"`,
        );
      }
      args.uncompressedSizes = value;
    } else if ((value = valueOf("--concurrency")) !== undefined) {
      const n = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
        throw new UsageError(
          `--concurrency takes a positive whole number, not "${value}"`,
        );
      }
      args.concurrency = n;
    } else if ((value = valueOf("--layers")) !== undefined) {
      if (value !== "uncompressed" && value !== "compressed") {
        throw new UsageError(
          `--layers takes uncompressed or compressed, not "${value}"`,
        );
      }
      args.layers = value;
    } else if ((value = valueOf("--format")) !== undefined) {
      if (value !== "docker" && value !== "oci" && value !== "docker+oci") {
        throw new UsageError(
          `--format takes docker, oci or docker+oci, not "${value}"`,
        );
      }
      args.format = value;
    } else if (
      (value = valueOf("-o") ?? valueOf("--output")) !== undefined
    ) args.output = value;
    else if (arg.startsWith("-") && arg !== "-") {
      throw new UsageError(`unknown option "${arg}"`);
    } else args.sources.push(arg);
  }
  return args;
}
