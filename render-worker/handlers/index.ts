import type { JobMessage } from "../../src/protocol/messages.ts";
import type { JobContext } from "./types.ts";
import { transcode } from "./transcode.ts";

type Handlers = { [K in JobMessage["type"]]: (job: Extract<JobMessage, { type: K }>, ctx: JobContext) => Promise<void> };

/** One handler per job kind; a kind missing here fails to type-check. */
export const handlers: Handlers = {
  transcode,
};
