import type { ContentKeys } from "../../content-protection/content-keys.ts";
import type { VideoWithKey } from "../../content-protection/job-protection.ts";
import type { z } from "zod";
import type { Db } from "../../db/client.ts";
import type { CostSettings } from "../../costs/cost-model.ts";
import type { EstimateColumns } from "../../costs/job-cost.ts";
import type { Job, Prisma } from "../../generated/prisma/client.ts";
import type { Capability } from "../../protocol/worker-messages.ts";
import type { JobMessage } from "../../protocol/job-message.ts";

/** What the API's settings give every job message. */
export interface JobMessageSettings {
  segmentSeconds: number;
  maxDurationSeconds: number;
  /** Opens a protected video's content key for its transcode's message. */
  contentKeys: ContentKeys;
  /** createVideoFromUrl: the largest download, and the test-only private-address switch. */
  urlImport: { maxBytes: number; allowPrivateAddresses: boolean };
}

/** Everything a message builder needs: the job's row, its video, its input parsed by its kind's schema. */
interface BuildFrom<Input> {
  job: Job;
  video: VideoWithKey;
  input: Input;
  settings: JobMessageSettings;
  envelope: Pick<JobMessage, "v" | "jobId" | "attempt" | "videoId">;
}

/**
 * Every fact the API keeps about one kind of job, in one module per kind (`src/jobs/kinds/`), listed
 * in `JOB_KINDS` (`index.ts`). The lifecycle around them is the same for every kind: `createJob`
 * parses the input, estimates and writes the row; the dispatcher routes it and sends its message;
 * the ingest applies its events and its last failure. The worker's side is its handler
 * (`render-worker/handlers/<kind>.ts`), the wire between them the kind's message in the contract.
 */
export interface JobKindModule<
  Input extends z.ZodType = z.ZodType,
  Type extends JobMessage["type"] = JobMessage["type"],
> {
  /** What the row stores, as the contract's message schema of the kind checks it: parsed before the row is written and again when its message is built. */
  input: Input;
  /** The columns of the job row that keep the parsed input, and the input read back from a row. */
  row: {
    write(input: z.output<Input>): { rungs?: string[] } | { input: Prisma.InputJsonValue };
    read(job: Job): unknown;
  };
  /** The worker capability the kind needs; its queue is named after it. */
  capability: Capability;
  /** With GPU_ROUTING=prefer, a job of the kind on the cpu queue may go to the nvenc queue (routing.ts). */
  gpuEncodable: boolean;
  /** The contract's message type the kind is sent as. */
  messageType: Type;
  /** The message of the job's current attempt, built from its row at every dispatch. */
  buildMessage(from: BuildFrom<z.output<Input>>): Extract<JobMessage, { type: Type }>;
  /** Rate-limit points (RATE_LIMIT_MUTATIONS_PER_MINUTE) one job of the kind costs the credential whose mutation queues it. */
  ratePoints: number;
  /** What the job's last failure does: fails its video (and a split transcode's other runs), or only what the job was making. */
  onLastFailure: "fail the video" | "fail its static renditions" | "fail its audio track" | "fail its caption";
  /** The cost estimate the row is created with (src/costs/ computes it; `{}`: none). */
  estimateAtEnqueue(
    tx: Pick<Db, "video" | "variant">,
    costs: CostSettings,
    job: { videoId: string; capability: string },
    input: z.output<Input>,
  ): Promise<EstimateColumns>;
}

/** A kind whose input is kept whole in `Job.input`. */
export const inputColumn = {
  // Through JSON: the stored value is what the message builder reads back (no undefined keys).
  write: (input: unknown) => ({ input: JSON.parse(JSON.stringify(input)) as Prisma.InputJsonValue }),
  read: (job: Job): unknown => job.input,
};

/** A kind queued with no cost estimate: its actual cost is recorded when its runs end. */
export const noEstimate = async (): Promise<EstimateColumns> => ({});
