/**
 * A tarball written into a file by position, its layers side by side: when
 * every member's size is known before its body (layers as stored, or sizes
 * the source knows, as a registry's gzip trailers), every member's offset
 * is known up front, so each layer body can be written into its place as
 * it arrives while up to `concurrency` layers download at once, with no
 * buffer between the network and the file. Each body is verified as it is
 * written (blob digest, diff_id, size), as in any other writer; the first
 * failure cancels every layer under way. The bytes are those of
 * `writePlan`.
 *
 * @module
 */

import type { SizedMember } from "./layers.ts";
import { endOfArchive, padding, tarHeader } from "./tar_writer.ts";
import type { SeekableSink } from "../runtime/seekable_sink.ts";

/**
 * Writes sized members into `sink` by position: headers and small members
 * first, then the layer bodies, `concurrency` at a time, in plan order.
 *
 * @example
 * ```ts
 * import { writeMembersInPlace } from "./positional_write.ts";
 * import type { SizedMember } from "./layers.ts";
 * import type { SeekableSink } from "../runtime/seekable_sink.ts";
 * declare const members: SizedMember[], sink: SeekableSink;
 * await writeMembersInPlace(members, sink, 3);
 * ```
 */
export async function writeMembersInPlace(
  members: SizedMember[],
  sink: SeekableSink,
  concurrency: number,
): Promise<void> {
  const bodies: { member: SizedMember; at: number }[] = [];
  let offset = 0;
  for (const member of members) {
    const header = tarHeader(member.name, member.size);
    await sink.writeAt(offset, header);
    const at = offset + header.byteLength;
    if (member.bytes) await sink.writeAt(at, member.bytes);
    else bodies.push({ member, at });
    offset = at + member.size;
    const pad = padding(member.size);
    if (pad > 0) await sink.writeAt(offset, new Uint8Array(pad));
    offset += pad;
  }
  await sink.writeAt(offset, new Uint8Array(endOfArchive(offset)));

  const open = new Set<ReadableStreamDefaultReader<Uint8Array>>();
  let failure: { error: unknown } | undefined;
  // Stops a body once another one has failed.
  const check = () => {
    if (failure) throw failure.error;
  };
  const fail = (error: unknown) => {
    failure ??= { error };
    for (const reader of open) reader.cancel(error).catch(() => {});
  };
  let next = 0;
  const worker = async () => {
    while (!failure && next < bodies.length) {
      const { member, at } = bodies[next++];
      try {
        await writeBody(member, at);
      } catch (error) {
        fail(error);
      }
    }
  };
  const writeBody = async (member: SizedMember, at: number) => {
    const reader = (await member.open(0)).getReader();
    open.add(reader);
    let complete = false;
    try {
      check();
      let written = 0;
      for (;;) {
        const { done, value } = await reader.read();
        check();
        if (done) break;
        // Counted before the write: a written chunk may be freed (detached).
        const length = value.byteLength;
        if (written + length > member.size) break;
        await sink.writeAt(at + written, value);
        written += length;
      }
      if (written !== member.size) {
        throw new RangeError(
          `Cannot write tar entry ${
            JSON.stringify(member.name)
          }: body has ${written} bytes or more, expected ${member.size}`,
        );
      }
      complete = true;
    } finally {
      open.delete(reader);
      if (!complete) await reader.cancel(failure?.error).catch(() => {});
      reader.releaseLock();
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, bodies.length) }, worker),
  );
  if (failure) throw failure.error;
  await sink.flush();
}
