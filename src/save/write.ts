/**
 * The one writer: a planned save as tar bytes, whole (`writePlan`) or with
 * every size known up front for ranges (`sizePlan`). Both resolve layers
 * through the same stage 4 (`LayerResolver`); `save()`, `saveToFile()`,
 * `saveSize()` and `saveResponse()` are thin sugar over these.
 *
 * @module
 */

import {
  type LayerOptions,
  LayerResolver,
  type SizedMember,
} from "./layers.ts";
import type { SavePlan } from "./pipeline.ts";
import { type TarEntry, tarStream } from "./tar_writer.ts";

/**
 * The tarball of a plan as one pull-based stream. The plan is made on the
 * first read, so nothing is asked of an image before then; a layer whose
 * uncompressed size nothing knows is counted in a first pass when reached.
 *
 * @example
 * ```ts
 * import { writePlan } from "./write.ts";
 * import { planSave } from "./pipeline.ts";
 * import type { Image } from "../image.ts";
 * declare const image: Image;
 * const tar = writePlan(() => planSave([["app:v1", image]], {}), {});
 * ```
 */
export function writePlan(
  plan: () => Promise<SavePlan>,
  options: LayerOptions,
): ReadableStream<Uint8Array> {
  const resolver = new LayerResolver(options, { count: true });
  let members: AsyncGenerator<SizedMember | undefined> | undefined;
  // return() acts at once, even while next() waits on a counting pass, and
  // cancels what is open.
  const entries: AsyncIterableIterator<TarEntry> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      members ??= resolver.members((await plan()).entries);
      const { done, value } = await members.next();
      if (done) return { done: true, value: undefined };
      return { done: false, value: tarEntryOf(value!) };
    },
    async return() {
      resolver.cancel();
      await members?.return(undefined).catch(() => {});
      return { done: true, value: undefined };
    },
  };
  return tarStream(entries);
}

/**
 * Every member of a plan with its size, learnt without reading a layer
 * body; `undefined` when some layer's uncompressed size needs a read.
 *
 * @example
 * ```ts
 * import { sizePlan } from "./write.ts";
 * import type { SavePlan } from "./pipeline.ts";
 * declare const plan: SavePlan;
 * const members = await sizePlan(plan, { layers: "compressed" });
 * ```
 */
export async function sizePlan(
  plan: SavePlan,
  options: LayerOptions,
): Promise<SizedMember[] | undefined> {
  const resolver = new LayerResolver(options, { count: false });
  const members: SizedMember[] = [];
  for await (const member of resolver.members(plan.entries)) {
    if (!member) return undefined;
    members.push(member);
  }
  return members;
}

function tarEntryOf(member: SizedMember): TarEntry {
  return {
    name: member.name,
    size: member.size,
    body: member.bytes ?? (() => member.open(0)),
  };
}
