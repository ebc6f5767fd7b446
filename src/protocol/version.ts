/**
 * The contract's version, which every job message and worker event carries as `v`.
 *
 * Versioning: a breaking change adds a new version and both sides accept the old one until every
 * producer is upgraded: version 2 renamed the render events (`render.progress` counts steps,
 * `source.ready` replaced `render.succeeded`); `parseWorkerEvent` (worker-messages.ts) still reads
 * version 1 and turns it into version 2. Upgrade workers before the API. Workers of the previous
 * release send `step.progress` as `render.progress`; the API reads it as `step.progress`.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 2 as const;
/** Versions still read, the current one last. */
const READ_VERSIONS = [1, PROTOCOL_VERSION] as const;
/** `v` of a message read from the other side: the current version or one still accepted. */
export const readVersion = z.literal(READ_VERSIONS).transform(() => PROTOCOL_VERSION);

/**
 * The W3C trace context (`traceparent`) of the span that sent a message, so the receiver's spans
 * join the sender's trace (docs/operations.md#traces). Optional, and a malformed one is dropped
 * rather than failing the message: readers of version 2 without it still accept every message.
 */
export const Traceparent = z
  .string()
  .regex(/^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/)
  .optional()
  .catch(undefined);

/** A message that does not parse, naming its version when it is not one still read. */
export class ProtocolError extends Error {
  constructor(what: string, data: unknown, cause: z.ZodError) {
    const v = typeof data === "object" && data !== null && "v" in data ? (data as { v: unknown }).v : undefined;
    const known = (READ_VERSIONS as readonly unknown[]).includes(v);
    const version = known ? "" : ` (protocol version ${JSON.stringify(v)}, expected ${READ_VERSIONS.join(" or ")})`;
    super(`Invalid ${what}${version}: ${z.prettifyError(cause)}`, { cause });
    this.name = "ProtocolError";
  }
}
