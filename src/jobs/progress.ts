import type { Variant } from "../generated/prisma/client.ts";
import type { JobEvent } from "../protocol/job-events.ts";
import { TERMINAL_VARIANT_STATUSES } from "../events/video-events.ts";

/*
 * Progress as the API keeps it. A transcode's job progress, fps, speed and ETA are the worker's
 * own figures (job.progress), passed on as they are; the API only keeps them from moving back.
 * A render's job progress is computed here from its steps.
 */

type StepProgress = Extract<JobEvent, { type: "step.progress" }>;
type ReportedVariantProgress = Extract<JobEvent, { type: "job.progress" }>["variants"][number];

/**
 * A render's progress, 0..1: the finished steps and the current one's share, over the step count.
 * Steps past the count (a loop the count could not foresee) stay within the last; null when the
 * steps cannot be counted.
 */
export function renderJobProgress(e: Pick<StepProgress, "index" | "count" | "percent">): number | null {
  if (!e.count) return null;
  return Math.min(1, (Math.min(e.index, e.count - 1) + e.percent / 100) / e.count);
}

/**
 * A variant as a worker's progress report leaves it (ENCODING, its progress, never fewer segments),
 * or null when the report says nothing new: the variant is finished, or the report is older than
 * the progress already kept.
 */
export function variantAfterProgress(row: Variant, reported: ReportedVariantProgress): Variant | null {
  if (TERMINAL_VARIANT_STATUSES.has(row.status) || reported.progress < row.progress) return null;
  const segmentCount = Math.max(row.segmentCount, reported.segmentCount);
  return { ...row, status: "ENCODING", progress: reported.progress, segmentCount };
}

/**
 * Progress goes to subscribers at once but to the database at most every `intervalMs` per job:
 * `due` says whether a job's progress is to be written now (and counts it as written).
 */
export function createProgressWriteThrottle(intervalMs: number) {
  const lastWrite = new Map<string, number>();
  return {
    due(jobId: string): boolean {
      const now = Date.now();
      if (now - (lastWrite.get(jobId) ?? 0) < intervalMs) return false;
      lastWrite.set(jobId, now);
      return true;
    },
    /** The job has ended: forget it. */
    forget(jobId: string): void {
      lastWrite.delete(jobId);
    },
  };
}
export type ProgressWriteThrottle = ReturnType<typeof createProgressWriteThrottle>;
