import { AsyncLocalStorage } from "node:async_hooks";
import { defaultFieldResolver, type GraphQLField, type GraphQLSchema } from "graphql";
import type { JobKind } from "../generated/prisma/client.ts";
import { JOB_KINDS } from "./kinds/index.ts";

/**
 * Rate-limit points (RATE_LIMIT_MUTATIONS_PER_MINUTE) one job of each kind costs the credential
 * whose mutation queues it: each kind's `ratePoints` (`src/jobs/kinds/`).
 */
export const JOB_RATE_POINTS = Object.fromEntries(
  Object.entries(JOB_KINDS).map(([kind, module]) => [kind, module.ratePoints]),
) as Record<JobKind, number>;

/**
 * What a root mutation field sets going, declared on every Mutation field (`extensions:
 * mutationWork(…)`): its rate-limit weight is computed from it, a schema test fails on a field
 * without one, and `createJob` refuses a job kind the running mutation did not declare.
 */
export interface MutationWork {
  /** Jobs the mutation queues, now or when its upload arrives: each is charged. */
  jobs: readonly JobKind[];
  /** Jobs it may queue that an earlier mutation was charged for (completeUpload's transcode). */
  prepaid?: readonly JobKind[];
  /** Points for work that is no job (a call to Gemini, a stored file); default 1 when there are no jobs. */
  points?: number;
}

/** The field extension that declares a mutation's work. */
export function mutationWork(work: MutationWork): { work: MutationWork } {
  return { work };
}

/** A schema field's declared work, if any. */
export function workOf(field: GraphQLField<unknown, unknown>): MutationWork | undefined {
  return (field.extensions as { work?: MutationWork }).work;
}

/** Rate-limit points of one execution of a field that declares `work` (1 for a field without). */
export function mutationWeight(work: MutationWork | undefined): number {
  if (!work) return 1;
  const jobs = work.jobs.reduce((sum, kind) => sum + JOB_RATE_POINTS[kind], 0);
  return (work.points ?? (work.jobs.length > 0 ? 0 : 1)) + jobs;
}

/**
 * What a root Query field costs against the same per-credential budget as mutations, from its
 * arguments as execution will see them (0: free), declared `extensions: queryWork(…)` beside the
 * field: a query whose database work a caller can make expensive (a title search) pays for it.
 */
export function queryWork(points: (args: Record<string, unknown>) => number): {
  queryPoints: (args: Record<string, unknown>) => number;
} {
  return { queryPoints: points };
}

/** Rate-limit points of one execution of a root Query field with these arguments (0 for a field without). */
export function queryWeight(field: GraphQLField<unknown, unknown>, args: Record<string, unknown>): number {
  const points = (field.extensions as { queryPoints?: (args: Record<string, unknown>) => number }).queryPoints;
  return points ? points(args) : 0;
}

const runningMutation = new AsyncLocalStorage<{ field: string; work: MutationWork | undefined }>();

/** Makes every root mutation resolver run with its declared work known to `assertJobDeclared`. */
export function withDeclaredMutationWork(schema: GraphQLSchema): GraphQLSchema {
  for (const field of Object.values(schema.getMutationType()?.getFields() ?? {})) {
    const resolve = field.resolve ?? defaultFieldResolver;
    const running = { field: field.name, work: workOf(field) };
    field.resolve = (...args) => runningMutation.run(running, () => resolve(...args));
  }
  return schema;
}

/**
 * Throws when a job of `kind` is queued inside a mutation that did not declare it: such a job
 * would cost its caller nothing against the rate limit. Jobs queued outside mutations (an upload's
 * bytes arriving, a render's transcode) pass.
 */
export function assertJobDeclared(kind: JobKind): void {
  const running = runningMutation.getStore();
  if (!running) return;
  if (running.work?.jobs.includes(kind) || running.work?.prepaid?.includes(kind)) return;
  throw new Error(
    `Mutation.${running.field} queues a ${kind} job it does not declare (extensions: mutationWork): ` +
      "it would not be charged against the rate limit",
  );
}
