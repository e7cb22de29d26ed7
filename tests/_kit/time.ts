/**
 * How long tests may take, by what they wait for, and a sleep.
 *
 * @module
 */

/** One test against a registry started for it (a push and a pull). */
export const REGISTRY_TIMEOUT = 60_000;
/** One test that runs an external tool a few times (skopeo, npm pack). */
export const TOOL_TIMEOUT = 120_000;
/** One test that loads tarballs into a daemon (dockerd, podman, workerd). */
export const LOADER_TIMEOUT = 180_000;
/** One test of the modern loaders (a chroot's daemons, three runtimes). */
export const MODERN_TIMEOUT = 600_000;

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
