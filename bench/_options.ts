/**
 * The command line of bench/save.bench.ts.
 *
 * @module
 */

import process from "node:process";

/** How the layers go into the tarball. */
export type Mode = "uncompressed" | "compressed";

/**
 * `node` runs the npm package's built CLI (`dist/bin/docker-save.js`, from
 * `npm run build`) with plain Node, as npm users do. `node-tsx` is opt-in:
 * the TypeScript sources through tsx, whose loader-hooks thread alone costs
 * ~35 MiB of RSS. `deno` is plain `deno run -A`, as a user runs the CLI
 * from JSR; `deno-capped` (opt-in) adds `--max-semi-space-size=1` as
 * `deno task cli` does.
 */
export type Runtime = "node" | "deno" | "bun" | "node-tsx" | "deno-capped";

/** Every runtime `--runtimes` accepts. */
export const RUNTIMES: Runtime[] = [
  "node",
  "deno",
  "bun",
  "node-tsx",
  "deno-capped",
];

/** What one invocation measures. */
export interface Options {
  sizes: number[];
  runs: number;
  runtimes: Runtime[];
  modes: Mode[];
  out?: string;
  append: boolean;
  /** Debian 12's skopeo (host) as a peer. */
  skopeo: boolean;
  /** skopeo 1.22 and crane from the modern-loaders chroot as peers. */
  modern: boolean;
  /** The two loopback-registry jobs. */
  registry: boolean;
  baselines: boolean;
  /** Run the CLI in the work tree rather than in a checked snapshot. */
  live: boolean;
}

/** The `--help` text. */
export const USAGE =
  "node --import tsx bench/save.bench.ts [--sizes 256,1024] [--runs 3] " +
  "[--runtimes node,deno,bun[,node-tsx,deno-capped]] " +
  "[--modes uncompressed,compressed] " +
  "[--out FILE [--append]] [--no-skopeo] [--no-modern] [--no-registry] " +
  "[--no-baselines] [--live]";

/** Parses the arguments; exits with status 2 on a bad one. */
export function parseOptions(argv: string[]): Options {
  const options: Options = {
    sizes: [256, 1024],
    runs: 3,
    runtimes: ["node", "deno", "bun"],
    modes: ["uncompressed", "compressed"],
    append: false,
    skopeo: true,
    modern: true,
    registry: true,
    baselines: true,
    live: false,
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const take = () => {
      const v = value ?? argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const list = () => take().split(",").map((s) => s.trim()).filter(Boolean);
    switch (arg) {
      case "--sizes":
        options.sizes = list().map((s) => {
          const n = Number(s);
          if (!Number.isInteger(n) || n <= 0) usage(`bad size "${s}"`);
          return n;
        });
        break;
      case "--runs":
        options.runs = Number(take());
        if (!Number.isInteger(options.runs) || options.runs < 1) {
          usage("--runs takes a positive integer");
        }
        break;
      case "--runtimes":
        options.runtimes = list().map((r) => {
          if (!RUNTIMES.includes(r as Runtime)) {
            usage(`unknown runtime "${r}"`);
          }
          return r as Runtime;
        });
        break;
      case "--modes":
        options.modes = list().map((m) => {
          if (m !== "uncompressed" && m !== "compressed") {
            usage(`unknown mode "${m}"`);
          }
          return m as Mode;
        });
        break;
      case "--out":
        options.out = take();
        break;
      case "--append":
        options.append = true;
        break;
      case "--no-skopeo":
        options.skopeo = false;
        break;
      case "--no-modern":
        options.modern = false;
        break;
      case "--no-registry":
        options.registry = false;
        break;
      case "--no-baselines":
        options.baselines = false;
        break;
      case "--live":
        options.live = true;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        usage(`unknown argument "${argv[i]}"`);
    }
  }
  return options;
}

function usage(message: string): never {
  console.error(`save.bench: ${message} (see --help)`);
  process.exit(2);
}
