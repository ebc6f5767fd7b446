import { log } from "../log.ts";
import { withLogFields } from "../shared/log.ts";
import { endsRun, isProgressEvent, type JobEvent } from "../protocol/job-events.ts";
import { parseWorkerEvent, type WorkerEvent } from "../protocol/worker-messages.ts";
import { contextOf, inSpan, SpanKind } from "../shared/tracing.ts";
import type { IngestOptions } from "./ingest/ingest-deps.ts";
import { createJobRunIngestor } from "./ingest/job-runs.ts";
import { createRenderEventIngestor } from "./ingest/render-events.ts";
import { createSplitTranscodeIngestor } from "./ingest/split-transcode-events.ts";
import { createTranscodeEventIngestor } from "./ingest/transcode-events.ts";
import { createProgressBatch } from "./ingest/progress-batch.ts";
import type { EventOf } from "./ingest/ingest-deps.ts";
import { createProgressWriteThrottle } from "./progress.ts";
import { recordActualCost } from "../costs/job-cost.ts";
import { onStaticRenditionsDone } from "./ingest/static-rendition-events.ts";
import { onAudioTrackDone } from "./ingest/audio-track-events.ts";
import { onCaptionsGenerated, onTranscribeProgress } from "./ingest/caption-events.ts";

/** After these the jobs waiting behind the job move: it left the queue's waiting line or freed a slot. */
const movesQueue = (e: JobEvent) => e.type === "job.started" || endsRun(e);

/**
 * These change what a job's actual cost is computed from (the probe and the ladder's rows, a
 * rung's measured rates): once its run has reported its seconds, the cost is computed again, so
 * the stored figure is the same whatever order the events arrive in. A run's end computes it too
 * (`finishRun`), and a static renditions job's end in the transaction that records its files.
 */
const changesActualCost = (e: JobEvent) =>
  e.type === "job.probed" || e.type === "variant.ready" || e.type === "variant.failed";

/**
 * Jobs whose events a batch applies at once. A lane holds at most two of the database pool's ten
 * connections (`createDb`; a progress event reads its video and variants together), and the
 * batch's progress (progress-batch.ts) one beside them, leaving the rest to GraphQL, the dispatcher
 * and webhooks.
 */
const EVENT_LANES = 4;

/**
 * A job's events (in order) as the steps a lane applies: each event alone, but consecutive
 * `variant.ready` events of one attempt together (a run's rungs end together, and their rows,
 * webhooks and fan-out take a constant number of statements: `readyVariantsIn`).
 */
function stepsOf(events: JobEvent[]): JobEvent[][] {
  const steps: JobEvent[][] = [];
  for (const e of events) {
    const last = steps.at(-1);
    const lead = last?.[0];
    if (e.type === "variant.ready" && lead?.type === "variant.ready" && lead.attempt === e.attempt) last!.push(e);
    else steps.push([e]);
  }
  return steps;
}

export interface EventIngestor {
  /** Parses, orders and applies a batch of raw worker events. */
  ingest(raw: unknown[]): Promise<void>;
}

/**
 * Applies worker events to Postgres and fans them out to subscribers. Every effect is
 * idempotent and monotonic (statuses only move forward, progress only grows), so a
 * redelivered or reordered event changes nothing; events of a superseded attempt are ignored.
 * Progress goes to subscribers at once but to the database at most every
 * `progressWriteIntervalMs` per job.
 */
export function createEventIngestor(options: IngestOptions): EventIngestor {
  const deps = {
    ...options,
    progressWrites: createProgressWriteThrottle(options.progressWriteIntervalMs),
  };
  const runs = createJobRunIngestor(deps);
  const transcode = createTranscodeEventIngestor(deps);
  const render = createRenderEventIngestor(deps, runs);
  const split = createSplitTranscodeIngestor(deps, runs, transcode);
  const progressBatch = createProgressBatch(deps, split.noteWholeRunProgress);

  /**
   * Applies `step` (one event, or a run's consecutive `variant.ready` events: `stepsOf`) in a span
   * of the worker's trace (`traceparent`), except progress, which comes every few seconds and would
   * bury the steps.
   */
  function applyJobEvents(step: JobEvent[]): Promise<void> {
    const e = step[0]!;
    return withLogFields({ jobId: e.jobId, attempt: e.attempt }, () => {
      if (isProgressEvent(e)) return applyEvents(step);
      const attributes = {
        "job.id": e.jobId,
        "job.attempt": e.attempt,
        "worker.id": e.workerId,
        "job.events": step.length,
      };
      const span = { parent: contextOf(e.traceparent), kind: SpanKind.CONSUMER, attributes };
      return inSpan(`ingest ${e.type}`, span, () => applyEvents(step));
    });
  }

  /** The events of one step share their job and attempt, so the first one's admission is theirs. */
  async function applyEvents(step: JobEvent[]): Promise<void> {
    const job = await runs.admit(step[0]!);
    if (!job) return;
    await withLogFields({ videoId: job.videoId }, () => applyAdmitted(step, job));
  }

  /** Deletes an unrecorded broadcast's media as it ends; true when it did (src/live/broadcast-job-events.ts). */
  async function discardUnrecordedMedia(e: JobEvent, job: { kind: string; videoId: string }): Promise<boolean> {
    return job.kind === "LIVE" && (await deps.live.discardUnrecordedMedia(e, job.videoId));
  }

  async function applyAdmitted(step: JobEvent[], job: NonNullable<Awaited<ReturnType<typeof runs.admit>>>) {
    const e = step[0]!;
    switch (e.type) {
      case "job.started":
        await runs.onStarted(e, job);
        break;
      case "job.probed":
        await transcode.onProbed(e, job.videoId, job.kind);
        await split.onProbed(e, job.videoId);
        break;
      case "job.progress":
        if (!(await split.onSplitProgress(e, job.videoId))) await transcode.onProgress(e, job.videoId);
        break;
      case "variant.ready":
        await transcode.onVariantsReady(step as EventOf<"variant.ready">[], job.videoId);
        break;
      case "variant.failed":
        await transcode.onVariantFailed(e, job.videoId);
        break;
      case "video.playable":
        await transcode.onPlayable(e, job.videoId);
        break;
      case "job.succeeded":
        if (e.firstChunk) await split.onFirstChunkSucceeded(e, job.videoId);
        else await transcode.onSucceeded(e, job.videoId, await discardUnrecordedMedia(e, job));
        break;
      case "job.split":
        await split.onSplit(e, job.videoId);
        break;
      case "chunk.succeeded":
        await split.onChunkSucceeded(e, job.videoId);
        break;
      case "step.progress":
        await render.onStepProgress(e, job.videoId);
        if (job.kind === "TRANSCRIBE") await onTranscribeProgress(deps.db, e);
        break;
      case "source.ready":
        await render.onSourceReady(e, job.videoId);
        break;
      case "static_renditions.done":
        await onStaticRenditionsDone(deps, runs, e, job.videoId);
        break;
      case "audio_track.done":
        await onAudioTrackDone(deps, runs, e, job.videoId);
        break;
      case "captions.generated":
        await onCaptionsGenerated(deps, runs, e, job.videoId);
        break;
      case "job.failed":
        await discardUnrecordedMedia(e, job);
        await runs.onFailed(e, job.videoId);
        break;
      // A duplicate run stopped on request (a canceled job's runs end in `admit`).
      case "job.canceled":
        await runs.finishRun(e);
        break;
      // A broadcast's health: its stream's subscribers hear it (below); nothing is stored.
      case "live.progress":
        break;
      // A simulcast target's state: the live module stores it on the target (below).
      case "live.simulcast":
        break;
      default:
        e satisfies never;
    }
    // A step's events are in order: its last carries its highest sequence number.
    await runs.recordSeq(step.at(-1)!);
    if (job.kind === "LIVE") for (const x of step) await deps.live.onJobEvent(x, job.videoId);
    if (movesQueue(e)) await deps.queueWatch.jobChanged(e.jobId);
    if (changesActualCost(e)) await recordActualCost(deps.db, deps.costs, e.jobId);
  }

  return {
    async ingest(raw) {
      const events: WorkerEvent[] = [];
      for (const item of raw) {
        try {
          events.push(parseWorkerEvent(item));
        } catch (err) {
          // A foreign or malformed message can never become valid: drop it instead of redelivering forever.
          log.error("worker event rejected", { err: (err as Error).message });
        }
      }
      const order = (e: WorkerEvent): [string, number, number] =>
        e.type === "worker.heartbeat" ? [e.workerId, 0, 0] : [e.jobId, e.attempt, e.seq];
      events.sort((a, b) => {
        const [ka, aa, sa] = order(a);
        const [kb, ab, sb] = order(b);
        return ka < kb ? -1 : ka > kb ? 1 : aa - ab || sa - sb;
      });
      // Each job's (or worker's) events in order; different jobs side by side, as two API instances
      // apply two batches: one job waiting on a round trip or a lock no longer holds up the rest
      // (docs/performance.md, "The control plane").
      const groups = new Map<string, WorkerEvent[]>();
      for (const e of events) {
        const key = order(e)[0];
        const group = groups.get(key);
        if (group) group.push(e);
        else groups.set(key, [e]);
      }
      // Jobs of which the batch holds only progress (most of a busy batch) are applied together, with a
      // constant number of statements (progress-batch.ts); the rest one event after another.
      const progressOnly: EventOf<"job.progress">[][] = [];
      const queue: WorkerEvent[][] = [];
      // Workers' heartbeats go after the jobs' events: a heartbeat names runs that a start in the same
      // batch may create (applied first, the run's last heartbeat was lost).
      const heartbeats: WorkerEvent[][] = [];
      for (const group of groups.values()) {
        if (group.every((e): e is EventOf<"job.progress"> => e.type === "job.progress")) progressOnly.push(group);
        else if (group[0]!.type === "worker.heartbeat") heartbeats.push(group);
        else queue.push(group);
      }
      const batched = await progressBatch.take(progressOnly);
      queue.push(...batched.left);
      const lane = async (groups: WorkerEvent[][]) => {
        for (let group = groups.shift(); group; group = groups.shift()) {
          if (group[0]!.type === "worker.heartbeat") {
            for (const e of group) if (e.type === "worker.heartbeat") await runs.onHeartbeat(e);
          } else {
            for (const step of stepsOf(group as JobEvent[])) await applyJobEvents(step);
          }
        }
      };
      const lanes = (groups: WorkerEvent[][]) =>
        Array.from({ length: Math.min(EVENT_LANES, groups.length) }, () => lane(groups));
      // Every lane ends before the batch is answered: a failed one fails the batch (redelivered whole,
      // which is harmless), with no lane still writing.
      for (const step of [() => [batched.apply(), ...lanes(queue)], () => lanes(heartbeats)]) {
        const failed = (await Promise.allSettled(step())).find((l) => l.status === "rejected");
        if (failed) throw failed.reason;
      }
    },
  };
}
