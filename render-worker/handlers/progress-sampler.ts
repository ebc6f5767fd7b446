import type { JobEventBody } from "../../src/protocol/messages.ts";
import { log } from "../log.ts";
import type { JobContext } from "./types.ts";

/**
 * Sends `sample()` as an event every `ctx.progressIntervalMs` when it changed since the last one
 * sent (null: nothing to say yet). A slow transport gets fewer, fresher samples rather than a
 * queue of stale ones, and a lost sample is replaced by the next, so it never fails the job.
 * `stop({ final: true })` sends the last state once more, so the end of a render is not lost
 * between ticks.
 */
export function sampleProgress(ctx: JobContext, sample: () => JobEventBody | null): { stop(options?: { final?: boolean }): Promise<void> } {
  let inFlight: Promise<void> | null = null;
  let lastSent = "";
  const tick = () => {
    if (inFlight) return;
    const body = sample();
    if (body === null) return;
    const serialized = JSON.stringify(body);
    if (serialized === lastSent) return;
    lastSent = serialized;
    inFlight = ctx
      .emit(body)
      .catch((err: unknown) => log.warn("progress event not sent", { err }))
      .finally(() => {
        inFlight = null;
      });
  };
  const timer = setInterval(tick, ctx.progressIntervalMs);
  return {
    async stop(options = {}) {
      clearInterval(timer);
      await inFlight;
      if (!options.final) return;
      tick();
      await inFlight;
    },
  };
}
