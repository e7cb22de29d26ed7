/**
 * A response body whose length is known up front, so the runtime sends
 * `Content-Length` instead of chunked encoding. Workers (workerd) ignore a
 * `Content-Length` header on a stream body and send it chunked unless the
 * stream is a `FixedLengthStream`'s readable side; other runtimes honour the
 * header and have no such class. The capability is probed here only.
 *
 * @module
 */

type FixedLengthStreamClass = new (
  length: number,
) => TransformStream<Uint8Array, Uint8Array>;

/**
 * `body`, through Workers' `FixedLengthStream(length)` where the runtime has
 * one (which then also fails the response if the body's length differs);
 * `body` itself elsewhere.
 *
 * @example
 * ```ts
 * import { withKnownLength } from "./fixed_length.ts";
 * const bytes = new Uint8Array(10);
 * const body = withKnownLength(new Blob([bytes]).stream(), 10);
 * new Response(body, { headers: { "content-length": "10" } });
 * ```
 */
export function withKnownLength(
  body: ReadableStream<Uint8Array>,
  length: number,
): ReadableStream<Uint8Array> {
  const Fixed = (globalThis as { FixedLengthStream?: FixedLengthStreamClass })
    .FixedLengthStream;
  return Fixed ? body.pipeThrough(new Fixed(length)) : body;
}
