const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof levels;

type Fields = Record<string, unknown>;

/**
 * A logger writing one JSON line per record on stderr, so logs stay machine-readable in Cloud
 * Logging; `base` goes on every record (the worker's `component`). The level comes from LOG_LEVEL.
 */
export function createJsonLog(base: Fields = {}) {
  let threshold: number = levels[process.env.LOG_LEVEL as LogLevel] ?? levels.info;
  function write(level: LogLevel, msg: string, fields?: Fields): void {
    if (levels[level] < threshold) return;
    const rec: Fields = { t: new Date().toISOString(), level, ...base, msg, ...fields };
    if (fields?.err instanceof Error) rec.err = { message: fields.err.message, stack: fields.err.stack };
    process.stderr.write(`${JSON.stringify(rec)}\n`);
  }
  return {
    log: {
      debug: (msg: string, fields?: Fields) => write("debug", msg, fields),
      info: (msg: string, fields?: Fields) => write("info", msg, fields),
      warn: (msg: string, fields?: Fields) => write("warn", msg, fields),
      error: (msg: string, fields?: Fields) => write("error", msg, fields),
    },
    setLevel(level: LogLevel): void {
      threshold = levels[level];
    },
  };
}
