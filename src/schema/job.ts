import { builder } from "../builder.ts";

export const JobStatusEnum = builder.enumType("JobStatus", {
  values: ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"] as const,
});
export const JobKindEnum = builder.enumType("JobKind", { values: ["TRANSCODE"] as const });

builder.prismaObject("Job", {
  description: "One unit of work for a worker; a failed attempt is retried with `attempt + 1` up to `maxAttempts`.",
  fields: (t) => ({
    id: t.exposeID("id"),
    kind: t.expose("kind", { type: JobKindEnum }),
    status: t.expose("status", { type: JobStatusEnum }),
    capability: t.exposeString("capability"),
    attempt: t.exposeInt("attempt"),
    maxAttempts: t.exposeInt("maxAttempts"),
    progress: t.exposeFloat("progress"),
    error: t.exposeString("error", { nullable: true }),
    workerId: t.exposeString("workerId", { nullable: true }),
    parent: t.relation("parent", { nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    startedAt: t.expose("startedAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
  }),
});
