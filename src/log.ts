import { createJsonLog } from "./protocol/json-log.ts";

const api = createJsonLog();

/** The API's log: JSON lines on stderr. */
export const log = api.log;
export const setLogLevel = api.setLevel;
