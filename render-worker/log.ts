import { createLog } from "../src/shared/log.ts";

/** The worker's log: the same format as the API's (src/shared/log.ts), with `component: "worker"`. */
export const log = createLog({ component: "worker" }).log;
