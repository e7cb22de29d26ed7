/**
 * A registry's rate limit, read from a 429's headers as Docker Hub sends
 * them (`ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 0;w=21600`;
 * the IETF draft's `ratelimit-reset` too). A window with nothing left is
 * hours long on Docker Hub: retrying within our backoff cannot succeed.
 *
 * @module
 */

/**
 * What a 429 said about the limit; each field only where its header
 * parsed as a number.
 *
 * @example
 * ```ts
 * import type { RateLimit } from "./rate_limit.ts";
 * const limit: RateLimit = { limit: 100, remaining: 0, window: 21600 };
 * ```
 */
export interface RateLimit {
  /** Requests allowed per window. */
  limit?: number;
  /** Requests left in this window. */
  remaining?: number;
  /** The window, in seconds. */
  window?: number;
  /** Seconds until the window resets. */
  reset?: number;
}

/**
 * The rate limit a response's headers state.
 *
 * @example
 * ```ts
 * import { readRateLimit } from "./rate_limit.ts";
 * readRateLimit(new Headers({ "ratelimit-limit": "100;w=21600" }));
 * // { limit: 100, window: 21600 }
 * ```
 */
export function readRateLimit(headers: Headers): RateLimit {
  const limit = field(headers.get("ratelimit-limit"));
  const remaining = field(headers.get("ratelimit-remaining"));
  const reset = field(headers.get("ratelimit-reset"));
  const found: RateLimit = {};
  if (limit.count !== undefined) found.limit = limit.count;
  if (remaining.count !== undefined) found.remaining = remaining.count;
  const window = limit.window ?? remaining.window;
  if (window !== undefined) found.window = window;
  if (reset.count !== undefined) found.reset = reset.count;
  return found;
}

/**
 * Whether a 429 says no request is left in its window (then retrying soon
 * cannot help).
 *
 * @example
 * ```ts
 * import { rateLimitUsedUp } from "./rate_limit.ts";
 * rateLimitUsedUp(new Headers({ "ratelimit-remaining": "0;w=21600" })); // true
 * ```
 */
export function rateLimitUsedUp(headers: Headers): boolean {
  return readRateLimit(headers).remaining === 0;
}

/**
 * The reason of a 429 for an error message: the limit as stated, and what
 * to do about it.
 *
 * @example
 * ```ts
 * import { rateLimitReason } from "./rate_limit.ts";
 * rateLimitReason(new Headers({
 *   "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600",
 * }), "status 429");
 * // "rate limited (status 429): 0 of 100 requests left per 6 h; log in …"
 * ```
 */
export function rateLimitReason(headers: Headers, status: string): string {
  const { limit, remaining, window, reset } = readRateLimit(headers);
  const parts: string[] = [];
  if (limit !== undefined) {
    parts.push(
      `${remaining ?? "?"} of ${limit} requests left${
        window !== undefined ? ` per ${duration(window)}` : ""
      }`,
    );
  } else if (remaining !== undefined) parts.push(`${remaining} requests left`);
  if (reset !== undefined) parts.push(`resets in ${duration(reset)}`);
  const stated = parts.length ? `: ${parts.join(", ")}` : "";
  return `rate limited (${status})${stated}; log in (--creds, docker login, options.credentials) for a higher limit, or pull through a mirror (--registry-mirror, options.registryMirrors)`;
}

// "100;w=21600" -> { count: 100, window: 21600 }; anything else is ignored
// (the header is the registry's text).
function field(value: string | null): { count?: number; window?: number } {
  if (value === null) return {};
  const [head, ...params] = value.split(";");
  const count = wholeNumber(head);
  let window: number | undefined;
  for (const param of params) {
    const [key, text] = param.split("=");
    if (key?.trim().toLowerCase() === "w") window = wholeNumber(text);
  }
  return { count, window };
}

function wholeNumber(text: string | undefined): number | undefined {
  const trimmed = text?.trim() ?? "";
  return /^\d{1,12}$/.test(trimmed) ? Number(trimmed) : undefined;
}

function duration(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
