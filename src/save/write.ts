/**
 * The writers of a planned save: a pull-based stream (`writePlan`), a file
 * that can seek (`writePlanSeekable`), and every size known up front for
 * ranges (`sizePlan`). All resolve layers through the same stage 4
 * (`LayerResolver`) and lay out bytes with the same tar functions, so they
 * give the same bytes; `save()`, `saveToFile()`, `saveSize()` and
 * `saveResponse()` are thin sugar over them.
 *
 * @module
 */

import { LayerResolver, type SizedMember } from "./layers.ts";
import type { SaveSettings } from "./options.ts";
import type { SeekableSink } from "../runtime/seekable_sink.ts";
import type { SavePlan } from "./pipeline.ts";
import { writeMembersInPlace } from "./positional_write.ts";
import {
  endOfArchive,
  padding,
  type TarEntry,
  tarHeader,
  tarStream,
} from "./tar_writer.ts";

/**
 * The tarball of a plan as one pull-based stream. The plan is made on the
 * first read, so nothing is asked of an image before then; a layer whose
 * uncompressed size nothing knows is counted in a first pass when reached.
 *
 * @example
 * ```ts
 * import { writePlan } from "./write.ts";
 * import { planSave } from "./pipeline.ts";
 * import type { Image } from "../model/image.ts";
 * declare const image: Image;
 * import { resolveOptions } from "./options.ts";
 * const settings = resolveOptions({});
 * const tar = writePlan(() => planSave([["app:v1", image]], settings), settings);
 * ```
 */
export function writePlan(
  plan: () => Promise<SavePlan>,
  settings: SaveSettings,
): ReadableStream<Uint8Array> {
  const resolver = new LayerResolver(settings, "count");
  let members: ReturnType<LayerResolver["members"]> | undefined;
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
      return { done: false, value: tarEntryOf(value as SizedMember) };
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
 * import { resolveOptions } from "./options.ts";
 * const members = await sizePlan(plan, resolveOptions({ layers: "compressed" }));
 * ```
 */
export async function sizePlan(
  plan: SavePlan,
  settings: SaveSettings,
): Promise<SizedMember[] | undefined> {
  const resolver = new LayerResolver(settings, "known");
  const members: SizedMember[] = [];
  for await (const member of resolver.members(plan.entries)) {
    if (member?.size === undefined) return undefined;
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

export type { SeekableSink };

/**
 * The tarball of a plan written to a sink that can seek, each layer read
 * once: where the uncompressed size is not known up front, the header is
 * reserved, the body written while it is decompressed and verified, then
 * the header patched (a layer of 8 GiB or more, whose header needs a PAX
 * size record, is written again with its size known). The bytes are those
 * of `writePlan`.
 *
 * @example
 * ```ts
 * import { type SeekableSink, writePlanSeekable } from "./write.ts";
 * import type { SavePlan } from "./pipeline.ts";
 * declare const plan: SavePlan, sink: SeekableSink;
 * import { resolveOptions } from "./options.ts";
 * await writePlanSeekable(plan, resolveOptions({}), sink);
 * ```
 */
export async function writePlanSeekable(
  plan: SavePlan,
  settings: SaveSettings,
  sink: SeekableSink,
): Promise<void> {
  // Every size known up front: each layer written into its place as it
  // arrives, side by side. Otherwise one after another, in order.
  if (settings.concurrency > 1) {
    const sized = await sizePlan(plan, settings);
    if (sized && sized.filter((member) => !member.bytes).length > 1) {
      return await writeMembersInPlace(sized, sink, settings.concurrency);
    }
  }
  const resolver = new LayerResolver(settings, "defer");
  let offset = 0;
  const put = async (bytes: Uint8Array) => {
    offset += bytes.byteLength;
    if (bytes.byteLength > 0) await sink.write(bytes);
  };
  const putBody = async (body: ReadableStream<Uint8Array>) => {
    let written = 0;
    for await (const chunk of iterate(body)) {
      written += chunk.byteLength;
      await put(chunk);
    }
    return written;
  };
  const putSized = async (member: SizedMember) => {
    await put(tarHeader(member.name, member.size));
    const written = member.bytes
      ? (await put(member.bytes), member.bytes.byteLength)
      : await putBody(await member.open(0));
    if (written !== member.size) {
      throw new RangeError(
        `Cannot write tar entry ${
          JSON.stringify(member.name)
        }: body has ${written} bytes, expected ${member.size}`,
      );
    }
    await put(new Uint8Array(padding(member.size)));
  };
  try {
    await writeMembers();
  } finally {
    resolver.cancel(); // downloads still under way after an error
  }
  async function writeMembers() {
    for await (const member of resolver.members(plan.entries)) {
      if (!member) continue;
      if (member.size !== undefined) {
        await putSized(member);
        continue;
      }
      // The header's length does not depend on the size below 8 GiB.
      const start = offset;
      const reserved = tarHeader(member.name, 0).byteLength;
      await put(new Uint8Array(reserved));
      const size = await putBody(await member.open());
      const header = tarHeader(member.name, size);
      if (header.byteLength === reserved) {
        await sink.writeAt(start, header);
        member.settle(size);
        await put(new Uint8Array(padding(size)));
      } else {
        await sink.truncate(start);
        offset = start;
        await putSized(member.sized(size));
      }
    }
  }
  await put(new Uint8Array(endOfArchive(offset)));
  await sink.flush();
}

// A stream's chunks; the stream is cancelled if the loop stops early.
async function* iterate(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<Uint8Array, void, undefined> {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
  }
}
