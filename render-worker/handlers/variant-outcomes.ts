import { BitRates, type Rung } from "../../src/protocol/media-facts.ts";
import { log } from "../log.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";

/** How a run's publication of one rung ended (the publisher's, or as a finished run's encode.json kept it). */
export interface VariantOutcome {
  name: string;
  playlistKey: string;
  segmentCount: number;
  /** Why storage refused the rung's files; absent when it was published. */
  error?: string;
  /** What the rung's segments carry, where measured. */
  bitRates?: { peak: number; average: number };
}

/**
 * How each rung of a publication ended, as the events that say it: `variant.failed` with why storage
 * refused it, else `variant.ready` with its playlist, segment count and what it carries (where that
 * reads as the contract has it: an encode.json is read back from storage). A rung not in `ladder` is
 * skipped. The caller sends them with the run's end (`emitTogether`).
 */
export function variantOutcomeEvents(
  jobId: string,
  ladder: readonly Rung[],
  variants: readonly VariantOutcome[],
): JobEventBody[] {
  const events: JobEventBody[] = [];
  for (const v of variants) {
    const rung = ladder.find((r) => r.name === v.name);
    if (!rung) continue;
    if (v.error !== undefined) {
      log.warn("a rung failed alone", { jobId, rung: v.name, error: v.error });
      events.push({ type: "variant.failed", name: v.name, rung, error: v.error });
      continue;
    }
    const bitRates = BitRates.safeParse(v.bitRates);
    events.push({
      type: "variant.ready",
      name: v.name,
      rung,
      playlistKey: v.playlistKey,
      segmentCount: v.segmentCount,
      ...(bitRates.success ? { bitRates: bitRates.data } : {}),
    });
  }
  return events;
}
