import { createLog, type LogLevel } from "./shared/log.ts";

const api = createLog();

/** The API's log: JSON lines on stderr for Cloud Logging, or readable lines in a terminal (src/shared/log.ts). */
export const log = api.log;
export const setLogLevel = api.setLevel;

/** graphql-yoga's log (unexpected resolver errors before masking, among others) written as the API's records. */
export function yogaLog(): Record<LogLevel, (...args: unknown[]) => void> {
  const write =
    (level: LogLevel) =>
    (first: unknown, ...rest: unknown[]) => {
      const err = [first, ...rest].find((a) => a instanceof Error);
      const message = typeof first === "string" ? `graphql-yoga: ${first}` : "graphql-yoga";
      const details = rest.filter((a) => a !== err);
      log[level](message, { ...(err ? { err } : {}), ...(details.length ? { details } : {}) });
    };
  // yoga's info lines are for its own debugging; they stay out of the API's info.
  return { debug: write("debug"), info: write("debug"), warn: write("warn"), error: write("error") };
}
