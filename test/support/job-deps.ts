import { DEFAULT_COST_SETTINGS, type CostSettings } from "../../src/costs/cost-model.ts";
import type { CancelDeps } from "../../src/jobs/cancel.ts";
import type { Dispatcher } from "../../src/jobs/dispatcher.ts";
import { NO_LIVE_STREAMS, UNWATCHED_QUEUES } from "./event-ingestor.ts";

/** What cancelVideo, retryVariant and queueUploadedVideo are built from (the API passes its services). */
export interface JobDeps extends CancelDeps {
  dispatcher: Dispatcher;
  maxAttempts: number;
  costs: CostSettings;
}

/** cancelVideo's deps for a test with no live streams and no queue watch; `overrides` says what it cares about. */
export function cancelDeps(
  base: Pick<CancelDeps, "db" | "pubSub" | "transport">,
  overrides: Partial<CancelDeps> = {},
): CancelDeps {
  return { ...base, queueWatch: UNWATCHED_QUEUES, live: NO_LIVE_STREAMS, ...overrides };
}

/** The job mutations' deps, as `cancelDeps` and with the default cost settings and 3 attempts. */
export function jobDeps(
  base: Pick<JobDeps, "db" | "pubSub" | "transport" | "dispatcher">,
  overrides: Partial<JobDeps> = {},
): JobDeps {
  return {
    ...cancelDeps(base),
    dispatcher: base.dispatcher,
    maxAttempts: 3,
    costs: DEFAULT_COST_SETTINGS,
    ...overrides,
  };
}
