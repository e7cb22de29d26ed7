/**
 * Platforms (`os/arch[/variant]`) and choosing an index entry by one: the one
 * rule every source uses (registries, OCI layouts, OCI archives).
 *
 * The rule: containerd's normalisation (`platforms.Normalize`: `x86_64` and
 * `x86-64` are `amd64`, `aarch64` is `arm64`, `armhf` is `arm/v7`, `armel` is
 * `arm/v6`, `i386` is `386`; a missing variant is the architecture's default,
 * `arm64` → `v8`, `arm` → `v7`, `amd64` → `v1`; `8` is `v8`) with
 * go-containerregistry's matching (`remote`'s `platform.Satisfies`: os and
 * architecture must be equal, and a variant constrains only when one is asked
 * for). With no variant asked, an entry with the architecture's default
 * variant is preferred (containerd's ordering), else the first match in index
 * order. Attestation entries (`unknown/unknown`) never match. When nothing
 * matches, the error is `DockerSaveError` `PLATFORM_NOT_FOUND`, listing what
 * the index has.
 *
 * @module
 */

import { DockerSaveError } from "./errors.ts";
import type { Descriptor, Platform } from "./image.ts";
import { untrustedText } from "../util/untrusted_text.ts";

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> =
  {
    x86_64: { architecture: "amd64" },
    "x86-64": { architecture: "amd64" },
    aarch64: { architecture: "arm64" },
    armhf: { architecture: "arm", variant: "v7" },
    armel: { architecture: "arm", variant: "v6" },
    i386: { architecture: "386" },
  };

// The variant an entry without one means (containerd's platforms).
const DEFAULT_VARIANTS: Record<string, string> = {
  arm64: "v8",
  arm: "v7",
  amd64: "v1",
};

// Platform names listed in an error, at most.
const LISTED = 32;

/**
 * Parses `os/arch[/variant]`, lowercased and normalised (see the module
 * comment); the variant stays `undefined` when not given, meaning "any".
 * Throws `DockerSaveError` `PLATFORM_NOT_FOUND` for another shape.
 *
 * @example
 * ```ts
 * import { parsePlatform } from "./platform.ts";
 * parsePlatform("linux/aarch64"); // { os: "linux", architecture: "arm64", variant: undefined }
 * parsePlatform("linux/arm64/8"); // { os: "linux", architecture: "arm64", variant: "v8" }
 * ```
 */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, ...rest] = text.split("/");
  if (!os || !architecture || rest.length || variant === "") {
    throw new DockerSaveError(
      "PLATFORM_NOT_FOUND",
      `Cannot parse platform ${
        untrustedText(JSON.stringify(text))
      }: it is not os/arch[/variant]`,
    );
  }
  return normalizePlatform({ os, architecture, variant });
}

/**
 * A platform in containerd's normal form: lowercase, architecture aliases
 * resolved, variants spelled `vN`. A missing variant stays missing.
 *
 * @example
 * ```ts
 * import { normalizePlatform } from "./platform.ts";
 * normalizePlatform({ os: "Linux", architecture: "armhf" });
 * // { os: "linux", architecture: "arm", variant: "v7" }
 * ```
 */
export function normalizePlatform(platform: Platform): Platform {
  const os = String(platform.os).toLowerCase();
  let architecture = String(platform.architecture).toLowerCase();
  let variant = typeof platform.variant === "string" && platform.variant !== ""
    ? platform.variant.toLowerCase()
    : undefined;
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    variant ??= alias.variant;
  }
  // containerd spells arm variants "v8", and accepts "8".
  if (variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
  return { os: os === "macos" ? "darwin" : os, architecture, variant };
}

/**
 * Whether an index entry's platform satisfies the one asked for: equal os
 * and architecture (normalised), and, when `want` names a variant, an equal
 * variant (a missing one is the architecture's default).
 *
 * @example
 * ```ts
 * import { parsePlatform, platformMatches } from "./platform.ts";
 * platformMatches({ os: "linux", architecture: "arm64" }, parsePlatform("linux/arm64/v8")); // true
 * platformMatches({ os: "linux", architecture: "arm", variant: "v6" }, parsePlatform("linux/arm/v7")); // false
 * ```
 */
export function platformMatches(
  have: Platform | undefined,
  want: Platform,
): boolean {
  if (!isPlatform(have)) return false;
  const entry = normalizePlatform(have);
  const wanted = normalizePlatform(want);
  if (entry.os !== wanted.os || entry.architecture !== wanted.architecture) {
    return false;
  }
  if (wanted.variant === undefined) return true;
  return variantOf(entry) === variantOf(wanted);
}

/**
 * `os/arch[/variant]` as given (not normalised), for messages; `unknown`
 * without a platform.
 *
 * @example
 * ```ts
 * import { formatPlatform } from "./platform.ts";
 * formatPlatform({ os: "linux", architecture: "arm64", variant: "v8" }); // "linux/arm64/v8"
 * ```
 */
export function formatPlatform(platform: Platform | undefined): string {
  if (!isPlatform(platform)) return "unknown";
  return untrustedText(
    [platform.os, platform.architecture, platform.variant].filter((part) =>
      typeof part === "string" && part !== ""
    ).join("/"),
  );
}

/**
 * The entry of an index's `manifests` for the platform `wanted`
 * (`os/arch[/variant]`), by the rule in the module comment. Entries that are
 * not objects are skipped; the caller checks the chosen entry's digest and
 * size. Throws `DockerSaveError` `PLATFORM_NOT_FOUND` listing the platforms
 * the index has.
 *
 * @example
 * ```ts
 * import { choosePlatform } from "./platform.ts";
 * const digest = "sha256:" + "0".repeat(64);
 * const entry = choosePlatform([
 *   { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: 1,
 *     platform: { os: "linux", architecture: "arm64", variant: "v8" } },
 * ], "linux/arm64", "app");
 * ```
 */
export function choosePlatform(
  manifests: readonly unknown[],
  wanted: string,
  what: string,
): Descriptor {
  const entries = manifests.filter((entry): entry is Descriptor =>
    typeof entry === "object" && entry !== null && !Array.isArray(entry)
  );
  const want = parsePlatform(wanted);
  const found = entries.filter((entry) =>
    !isAttestation(entry.platform) && platformMatches(entry.platform, want)
  );
  const preferred = DEFAULT_VARIANTS[want.architecture];
  const best = want.variant === undefined && preferred !== undefined
    ? found.find((entry) => variantOf(entry.platform!) === preferred)
    : undefined;
  const chosen = best ?? found[0];
  if (chosen) return chosen;
  const available = [
    ...new Set(
      entries.filter((entry) =>
        isPlatform(entry.platform) && !isAttestation(entry.platform)
      ).map((entry) => formatPlatform(entry.platform)),
    ),
  ];
  const listed = available.slice(0, LISTED).join(", ") +
    (available.length > LISTED ? `, … (${available.length} in all)` : "");
  throw new DockerSaveError(
    "PLATFORM_NOT_FOUND",
    `Cannot choose platform ${wanted} from ${what}: it has ${
      listed || "no platforms"
    }`,
  );
}

function isPlatform(value: unknown): value is Platform {
  const p = value as Platform | undefined;
  return typeof p === "object" && p !== null && typeof p.os === "string" &&
    typeof p.architecture === "string";
}

/**
 * Whether an index entry's platform is an attestation's (buildx writes
 * `unknown/unknown`): never chosen as a platform, copied as an artifact.
 *
 * @example
 * ```ts
 * import { isAttestation } from "./platform.ts";
 * isAttestation({ os: "unknown", architecture: "unknown" }); // true
 * ```
 */
export function isAttestation(platform: Platform | undefined): boolean {
  return isPlatform(platform) && platform.os === "unknown" &&
    platform.architecture === "unknown";
}

/**
 * The platform an image config names (`os`, `architecture`, `variant`), or
 * `undefined` when it names none or is not JSON (`save()` reports a bad
 * config with its own error).
 *
 * @example
 * ```ts
 * import { configPlatform } from "./platform.ts";
 * const config = new TextEncoder().encode('{"os":"linux","architecture":"arm64"}');
 * configPlatform(config); // { os: "linux", architecture: "arm64" }
 * ```
 */
export function configPlatform(config: Uint8Array): Platform | undefined {
  try {
    const { os, architecture, variant } = JSON.parse(
      new TextDecoder().decode(config),
    );
    if (typeof os !== "string" || typeof architecture !== "string") return;
    return typeof variant === "string"
      ? { os, architecture, variant }
      : { os, architecture };
  } catch {
    return undefined;
  }
}

/**
 * Checks that a single image (no index was there to choose from) is of the
 * platform asked for: `PLATFORM_NOT_FOUND` otherwise, as
 * go-containerregistry's `remote.Image` with a platform does. A config that
 * names no platform passes.
 *
 * @example
 * ```ts
 * import { checkImagePlatform } from "./platform.ts";
 * const config = new TextEncoder().encode('{"os":"linux","architecture":"amd64"}');
 * checkImagePlatform(config, "linux/amd64", '"app:v1"'); // passes
 * ```
 */
export function checkImagePlatform(
  config: Uint8Array,
  wanted: string,
  what: string,
): void {
  const have = configPlatform(config);
  if (have && !platformMatches(have, parsePlatform(wanted))) {
    throw new DockerSaveError(
      "PLATFORM_NOT_FOUND",
      `Cannot choose platform ${
        untrustedText(wanted)
      } from ${what}: it is a single ${formatPlatform(have)} image`,
    );
  }
}

function variantOf(platform: Platform): string | undefined {
  const normal = normalizePlatform(platform);
  return normal.variant ?? DEFAULT_VARIANTS[normal.architecture];
}
