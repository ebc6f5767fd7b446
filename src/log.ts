const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
type Level = keyof typeof levels;
let threshold: number = levels[(process.env.LOG_LEVEL as Level) ?? "info"] ?? levels.info;

export function setLogLevel(level: Level): void {
  threshold = levels[level];
}

/** One JSON line per record on stderr, so logs stay machine-readable in Cloud Logging. */
function write(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (levels[level] < threshold) return;
  const rec: Record<string, unknown> = { t: new Date().toISOString(), level, msg, ...fields };
  if (fields?.err instanceof Error) rec.err = { message: fields.err.message, stack: fields.err.stack };
  process.stderr.write(`${JSON.stringify(rec)}\n`);
}

export const log = {
  debug: (msg: string, fields?: Record<string, unknown>) => write("debug", msg, fields),
  info: (msg: string, fields?: Record<string, unknown>) => write("info", msg, fields),
  warn: (msg: string, fields?: Record<string, unknown>) => write("warn", msg, fields),
  error: (msg: string, fields?: Record<string, unknown>) => write("error", msg, fields),
};
