import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { Job } from "../generated/prisma/client.ts";
import { JobKind, type JobRoutingReason, JobRunStatus, JobStatus } from "../generated/prisma/enums.ts";
import { cancelVideo } from "../jobs/cancel.ts";
import { isUuid } from "../ids.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { parseJobInput } from "../jobs/create-job.ts";
import type { ChunkRange } from "../protocol/media-facts.ts";

const JobStatusEnum = builder.enumType(JobStatus, { name: "JobStatus" });
const JobKindEnum = builder.enumType(JobKind, { name: "JobKind" });
const JobRunStatusEnum = builder.enumType(JobRunStatus, { name: "JobRunStatus" });
const JobRoutingReasonEnum = builder.enumType("JobRoutingReason", {
  description: "Why a job went to its queue (`dispatchedTo`).",
  values: {
    CAPABILITY: { description: "Its kind runs only on its capability's queue." },
    LOCAL_FALLBACK: { description: "No worker with its capability was alive, so the API's own worker took it." },
    GPU_WORKER_ALIVE: { description: "A worker advertising nvenc was alive, so the transcode went to nvenc." },
    NO_GPU_WORKER: { description: "No worker advertising nvenc was alive, so the transcode went to cpu." },
    GPU_WAIT_EXPIRED: {
      description: "No nvenc worker took the transcode within GPU_FALLBACK_AFTER_SECONDS, so it went to cpu.",
    },
    SOURCE_BELOW_GPU_MINIMUM: {
      description: "The source is shorter or lower than GPU routing's minimum, so the transcode went to cpu.",
    },
    GPU_ROUTING_OFF: { description: "GPU routing is off, so the transcode went to cpu." },
    GPU_ENCODE_FAILED: {
      description: "An attempt of the transcode failed on the nvenc queue, so its next attempts went to cpu.",
    },
  } as const satisfies Record<JobRoutingReason, { description: string }>,
});

const JobChunkRef = builder.objectRef<ChunkRange>("JobChunk").implement({
  description:
    "A time chunk of a split transcode (docs/chunked-transcoding.md): every video rung's segments `fromSegment` " +
    "to `toSegment - 1`, from `fromSeconds` to `toSeconds` of the source.",
  fields: (t) => ({
    index: t.exposeInt("index", { description: "0 is the first chunk, which the transcode's own run encodes." }),
    fromSegment: t.exposeInt("fromSegment"),
    toSegment: t.exposeInt("toSegment", { description: "Exclusive." }),
    fromSeconds: t.exposeFloat("fromSeconds"),
    toSeconds: t.exposeFloat("toSeconds"),
  }),
});

builder.prismaObject("JobRun", {
  description: "One worker's run of one attempt: where the job ran and, for operators, why it failed.",
  fields: (t) => ({
    id: t.exposeID("id"),
    attempt: t.exposeInt("attempt"),
    workerId: t.exposeString("workerId"),
    status: t.expose("status", { type: JobRunStatusEnum }),
    startedAt: t.expose("startedAt", { type: "DateTime" }),
    heartbeatAt: t.expose("heartbeatAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
    error: t.exposeString("error", { nullable: true }),
    command: t.exposeString("command", { nullable: true, description: "The command line that failed." }),
    stderrTail: t.exposeString("stderrTail", {
      nullable: true,
      description: "The last lines the failed command wrote to stderr.",
    }),
    exitCode: t.exposeInt("exitCode", { nullable: true }),
    resumedSegments: t.exposeInt("resumedSegments", {
      nullable: true,
      description:
        "Segments per rung this run kept from an earlier run of the job instead of encoding them again; " +
        "null: it encoded from the start.",
    }),
    resumedFromSeconds: t.exposeFloat("resumedFromSeconds", {
      nullable: true,
      description: "The media time this run started encoding from, when it resumed.",
    }),
    alreadyDone: t.exposeBoolean("alreadyDone", {
      description:
        "The job was delivered again after it finished: this run found its output complete in storage and did no work.",
    }),
  }),
});

export const JobRef = builder.prismaObject("Job", {
  description: "One unit of work for a worker; a failed attempt is retried with `attempt + 1` up to `maxAttempts`.",
  fields: (t) => ({
    id: t.exposeID("id"),
    kind: t.expose("kind", { type: JobKindEnum }),
    status: t.expose("status", { type: JobStatusEnum }),
    capability: t.exposeString("capability", { description: "What a worker needs to run it: cpu, nvenc, manim." }),
    dispatchedTo: t.exposeString("dispatchedTo", {
      nullable: true,
      description:
        "The queue its attempt went to: its capability's, `nvenc` for a transcode a GPU worker may take, or " +
        "`local` when the API's own worker took it because no worker with the capability was alive.",
    }),
    routingReason: t.expose("routingReason", {
      type: JobRoutingReasonEnum,
      nullable: true,
      description: "Why it went to `dispatchedTo`; null until it is dispatched.",
    }),
    attempt: t.exposeInt("attempt"),
    maxAttempts: t.exposeInt("maxAttempts"),
    progress: t.exposeFloat("progress", {
      description:
        "How far the job's run is, 0..1, in the media it encodes. A run of a split transcode (a chunk, or its first run) that is retried or taken over by another delivery (to another worker or the same one) starts again at 0: it encodes its whole part again.",
    }),
    rungs: t.exposeStringList("rungs", {
      description: "The rungs the job encodes (retryVariant); empty: the whole ladder.",
    }),
    error: t.exposeString("error", { nullable: true }),
    workerId: t.exposeString("workerId", {
      nullable: true,
      description:
        "The worker whose run holds the job's current attempt (a duplicate delivery stopped at its start never does); null while it is queued.",
    }),
    parent: t.relation("parent", {
      nullable: true,
      description: "The job this one works for: a render's transcode, or the split transcode a chunk is part of.",
    }),
    chunk: t.field({
      type: JobChunkRef,
      nullable: true,
      description: "Which part of the source a TRANSCODE_CHUNK job encodes; null for other kinds.",
      resolve: (job) => (job.kind === "TRANSCODE_CHUNK" ? parseJobInput("TRANSCODE_CHUNK", job.input).chunk : null),
    }),
    runs: t.relation("runs", {
      description: "Every worker run of every attempt, oldest first; for operators (scope jobs:admin).",
      authScopes: { scope: "jobs:admin" },
      query: { orderBy: { startedAt: "asc" } },
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    startedAt: t.expose("startedAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
  }),
});

const CancelJobSuccess = builder.objectRef<{ job: Job }>("CancelJobSuccess").implement({
  fields: (t) => ({ job: t.field({ type: JobRef, resolve: (r) => r.job }) }),
});

builder.queryFields((t) => ({
  job: t.prismaField({
    type: "Job",
    nullable: true,
    description:
      "A job of one of the caller's tenant's videos (its id from `Video.jobs`); null for any other id. A split " +
      "transcode's chunk jobs are its `chunks`.",
    authScopes: { scope: "videos:read" },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, { id }, ctx) =>
      isUuid(String(id))
        ? ctx.db.job.findFirst({ ...query, where: { id: String(id), video: { tenantId: tenantOf(ctx) } } })
        : null,
  }),
}));

builder.mutationFields((t) => ({
  cancelJob: t.field({
    type: CancelJobSuccess,
    description:
      "Cancels a queued or running job, and with it its video: the worker stops within seconds and cleans up.",
    authScopes: { scope: "jobs:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "CancelJobResult" } },
    resolve: async (_root, { id }, ctx) => {
      const job = isUuid(String(id))
        ? await ctx.db.job.findFirst({ where: { id: String(id), video: { tenantId: tenantOf(ctx) } } })
        : null;
      if (!job) throw new NotFoundError("job", String(id));
      if (job.status !== "QUEUED" && job.status !== "RUNNING") {
        throw new ValidationError("id", `The job is ${job.status}; only queued or running jobs can be canceled`);
      }
      await cancelVideo(ctx, job.videoId, [job.id]);
      return { job: await ctx.db.job.findUniqueOrThrow({ where: { id: job.id } }) };
    },
  }),
}));
