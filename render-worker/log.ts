import { createLog } from "../src/protocol/log.ts";

/** The worker's log: the same format as the API's (src/protocol/log.ts), with `component: "worker"`. */
export const log = createLog({ component: "worker" }).log;
