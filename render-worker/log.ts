import { createJsonLog } from "../src/protocol/json-log.ts";

/** The worker's log: JSON lines on stderr, the same format as the API's, with `component: "worker"`. */
export const log = createJsonLog({ component: "worker" }).log;
