/** What workers are (capabilities), what they send (heartbeats, events) and the control messages they get. */
import { z } from "zod";
import { JobEvent } from "./job-events.ts";
import { ProtocolError, readVersion } from "./version.ts";

/**
 * What a worker can do; each capability has its own job queue/topic. `local` is the queue of the
 * API's own worker (npm start): the API sends a job there when no worker with the job's
 * capability is alive and LOCAL_FALLBACK is on. `asr`: speech recognition (generated captions), served
 * where `npm run setup:asr` installed the model.
 */
export const Capability = z.enum(["cpu", "nvenc", "manim", "local", "live", "asr"]);
export type Capability = z.infer<typeof Capability>;

/** Sent by every worker on a timer, with what it can do and what it is running. */
export const WorkerHeartbeat = z.object({
  v: readVersion,
  type: z.literal("worker.heartbeat"),
  workerId: z.string().min(1),
  capabilities: z.array(Capability),
  /**
   * Capabilities it is testing (Manim's test render) and takes once the test passes; the API
   * accepts their jobs meanwhile. Absent from older workers.
   */
  probing: z.array(Capability).optional(),
  /** Jobs it runs at once (WORKER_CONCURRENCY); absent from older workers, which count as 1. */
  slots: z.number().int().positive().optional(),
  /**
   * Broadcasts it encodes at once when it serves `live` (WORKER_LIVE_SLOTS), beside its `slots`;
   * absent from older workers, whose live queue took `slots` broadcasts.
   */
  liveSlots: z.number().int().positive().optional(),
  /** Jobs (id and attempt) the worker is running right now. */
  activeJobs: z.array(z.object({ jobId: z.uuid(), attempt: z.number().int().positive() })),
  at: z.iso.datetime(),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeat>;

/**
 * Sent by the API to every worker (broadcast); a worker acts on the jobs it runs and ignores the
 * rest. Delivery is best effort: a worker that misses a cancel finds out when its events are
 * refused, and the API repeats the cancel when a canceled job starts or appears in the worker's
 * heartbeat (which a worker sends at once when its control channel comes back).
 */
export const ControlMessage = z.discriminatedUnion("type", [
  z.object({
    v: readVersion,
    type: z.literal("job.cancel"),
    jobId: z.uuid(),
    attempt: z.number().int().positive(),
    /** Only this worker stops (a duplicate run of a job another worker is running); all when absent. */
    workerId: z.string().optional(),
    /** Only this run stops (a duplicate run, which may be on the same worker as the original). */
    runId: z.uuid().optional(),
  }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

/** Parses an unknown message into a control message, with a readable error for old or foreign ones. */
export function parseControlMessage(data: unknown): ControlMessage {
  const result = ControlMessage.safeParse(data);
  if (!result.success) throw new ProtocolError("control message", data, result.error);
  return result.data;
}

/** Everything a worker sends to the API. */
export const WorkerEvent = z.union([JobEvent, WorkerHeartbeat]);
export type WorkerEvent = z.infer<typeof WorkerEvent>;

/** Parses an unknown message into a worker event, with a readable error for old or foreign ones. */
export function parseWorkerEvent(data: unknown): WorkerEvent {
  const result = WorkerEvent.safeParse(renameOlderEvent(data));
  if (!result.success) throw new ProtocolError("worker event", data, result.error);
  return result.data;
}

/** Events under the names older workers send them by, renamed; everything else as it is. */
function renameOlderEvent(data: unknown): unknown {
  if (typeof data !== "object" || data === null) return data;
  const event = data as Record<string, unknown>;
  if (event.type === "render.progress") {
    if (event.v !== 1) return { ...event, type: "step.progress" };
    const { animationIndex, animationCount, ...rest } = event;
    return { ...rest, type: "step.progress", index: animationIndex, count: animationCount };
  }
  if (event.v === 1 && event.type === "render.succeeded") {
    const { animationsRendered, animationsCached, ...rest } = event;
    return { ...rest, type: "source.ready", renderedCount: animationsRendered, cachedCount: animationsCached };
  }
  return data;
}
