import { builder } from "../builder.ts";
import type { Context } from "../context.ts";
import type { VideoEventPayload } from "../events/video-events.ts";
import type { QueuePosition } from "../events/video-events.ts";
import { queueOf } from "../jobs/queue-position.ts";
import { VideoEventInterface } from "./video-events.ts";

const QueuePositionRef = builder.objectRef<QueuePosition>("QueuePosition").implement({
  description:
    "Where a queued job stands in its queue. The position counts every job waiting in the queue, of every tenant; " +
    "it names none of them.",
  fields: (t) => ({
    queue: t.exposeString("queue", { description: "The queue: cpu, nvenc, manim or local." }),
    position: t.exposeInt("position", { description: "1 for the next job a free worker slot takes." }),
    jobsAhead: t.int({ description: "Jobs waiting before this one.", resolve: (p) => p.position - 1 }),
    slots: t.exposeInt("slots", {
      description: "Jobs the live workers serving the queue run at once; 0 when none is alive.",
    }),
    estimatedStartSeconds: t.float({
      nullable: true,
      description:
        "Seconds from `estimatedAt` until the job is expected to start, from the queue's measured throughput; " +
        "null when no live worker serves the queue.",
      resolve: (p) => p.estimatedStartSeconds,
    }),
    estimatedStartAt: t.field({
      type: "DateTime",
      nullable: true,
      resolve: (p) =>
        p.estimatedStartSeconds === null ? null : new Date(Date.parse(p.at) + p.estimatedStartSeconds * 1000),
    }),
    estimatedAt: t.field({ type: "DateTime", description: "When it was estimated.", resolve: (p) => p.at }),
  }),
});

builder.objectRef<Extract<VideoEventPayload, { kind: "queuePosition" }>>("QueuePositionEvent").implement({
  description:
    "The video's queued job moved in its queue (a job ahead started, ended or was canceled), or its estimate changed.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({ position: t.field({ type: QueuePositionRef, resolve: (e) => e.position }) }),
});

/** Each queue is read once per request, however many jobs or videos ask. */
const readPerRequest = new WeakMap<Context, Map<string, ReturnType<Context["queueWatch"]["positions"]>>>();

async function positionOf(ctx: Context, job: { id: string; dispatchedTo: string | null; capability: string }) {
  const queues: Map<string, ReturnType<Context["queueWatch"]["positions"]>> = readPerRequest.get(ctx) ?? new Map();
  readPerRequest.set(ctx, queues);
  const queue = queueOf(job);
  const read = queues.get(queue) ?? ctx.queueWatch.positions(queue);
  queues.set(queue, read);
  return (await read).find((w) => w.jobId === job.id)?.position ?? null;
}

builder.prismaObjectFields("Job", (t) => ({
  queuePosition: t.field({
    type: QueuePositionRef,
    nullable: true,
    description: "Where the job stands in its queue while it is QUEUED; null otherwise.",
    select: { id: true, status: true, dispatchedTo: true, capability: true },
    resolve: (job, _args, ctx) => (job.status === "QUEUED" ? positionOf(ctx, job) : null),
  }),
}));

builder.prismaObjectFields("Video", (t) => ({
  queuePosition: t.field({
    type: QueuePositionRef,
    nullable: true,
    description:
      "Where the video's queued job stands in its queue (a front end shows “3rd in line, about 20 s”); null when " +
      "none of its jobs is QUEUED. Subscribers of `videoEvents` get a QueuePositionEvent when it changes.",
    select: { jobs: { where: { status: "QUEUED" }, select: { id: true, dispatchedTo: true, capability: true } } },
    resolve: async (video, _args, ctx) => {
      const job = video.jobs[0];
      return job ? positionOf(ctx, job) : null;
    },
  }),
}));
