import { AsyncLocalStorage } from "node:async_hooks";
import { context, isSpanContextValid, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

/** The levels both programs log at, in order (LOG_LEVEL). */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `auto`: human-readable lines when stderr is a terminal, JSON otherwise (LOG_FORMAT). */
export const LOG_FORMATS = ["auto", "json", "pretty"] as const;
type LogFormat = (typeof LOG_FORMATS)[number];

type Fields = Record<string, unknown>;

/** Cloud Logging's `severity` for each pino level (LogSeverity in Google's structured logging). */
const SEVERITY: Record<string, string> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};

/** What a program's code calls: a message first, then the fields of the record. */
export interface Log {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  /** A log whose every record carries `bindings`. */
  child(bindings: Fields): Log;
}

/**
 * Fields every record written inside `withLogFields` carries (request, job and video ids), however
 * deep the call that logs: the record of a module that only imports the program's `log`.
 */
const contextFields = new AsyncLocalStorage<Fields>();

/** Runs `fn` with `fields` on every record it logs (nested calls add to the outer fields). */
export function withLogFields<T>(fields: Fields, fn: () => T): T {
  return contextFields.run({ ...contextFields.getStore(), ...fields }, fn);
}

/**
 * Runs `fn` outside the caller's log fields and span: background work a request only woke up (the
 * dispatcher's loop) must not log under that request's id or trace.
 */
export function detached<T>(fn: () => T): T {
  return contextFields.exit(() => context.with(ROOT_CONTEXT, fn));
}

/**
 * The fields Cloud Logging reads to put a record in its trace: `logging.googleapis.com/trace` is
 * `projects/{project}/traces/{traceId}` when the project is known (GOOGLE_CLOUD_PROJECT), else the
 * bare trace id, which other backends read.
 */
function traceFields(project: string | undefined): Fields {
  const span = trace.getActiveSpan()?.spanContext();
  if (!span || !isSpanContextValid(span)) return {};
  return {
    "logging.googleapis.com/trace": project ? `projects/${project}/traces/${span.traceId}` : span.traceId,
    "logging.googleapis.com/spanId": span.spanId,
    "logging.googleapis.com/trace_sampled": (span.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED,
  };
}

function wrap(logger: Logger): Log {
  const write = (level: LogLevel) => (message: string, fields?: Fields) => logger[level](fields ?? {}, message);
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: (bindings) => wrap(logger.child(bindings)),
  };
}

/**
 * An error as a record carries it (the `err` field): pino's serializer (type, message and stack,
 * causes included) with the error's own properties that describe it (a database error's `code`,
 * `severity`, `routine`; an SDK's `$metadata`), less any that hold an instance of a class: pg
 * attaches the whole `client` of a connection the server ended, and such a warning was 5 kB of the
 * client's internals on one line. Plain objects, arrays and nested errors stay.
 */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(out)) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) continue;
    const proto = Object.getPrototypeOf(value);
    const nestedError = typeof (value as { message?: unknown }).message === "string";
    if (proto !== Object.prototype && proto !== null && !nestedError) delete out[key];
  }
  return out;
}

function prettyWanted(format: string | undefined): boolean {
  const chosen = (LOG_FORMATS as readonly string[]).includes(format ?? "") ? (format as LogFormat) : "auto";
  return chosen === "pretty" || (chosen === "auto" && process.stderr.isTTY === true);
}

/**
 * A program's log, on stderr: one JSON object a line with the fields Cloud Logging reads
 * (`severity`, `message`, `time`, the trace and span of the active span), or with LOG_FORMAT
 * (`auto` in a terminal) human-readable lines. `base` goes on every record (the worker's
 * `component`). The level comes from LOG_LEVEL until `setLevel`.
 */
export function createLog(
  base: Fields = {},
  options: { env?: NodeJS.ProcessEnv; destination?: NodeJS.WritableStream } = {},
) {
  const { env = process.env, destination } = options;
  const project = env.GOOGLE_CLOUD_PROJECT || undefined;
  const level = (LOG_LEVELS as readonly string[]).includes(env.LOG_LEVEL ?? "") ? env.LOG_LEVEL : "info";
  const humans = prettyWanted(env.LOG_FORMAT);
  // process.stderr writes synchronously to files, pipes and terminals on Linux: no line is lost at exit.
  const out = destination ?? process.stderr;
  const logger = pino(
    {
      level,
      base,
      messageKey: "message",
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
      // pino-pretty reads pino's numeric `level`; Cloud Logging reads `severity`.
      formatters: humans ? {} : { level: (label) => ({ severity: SEVERITY[label] ?? "DEFAULT" }) },
      mixin: () => ({ ...contextFields.getStore(), ...traceFields(project) }),
    },
    humans ? pretty({ destination: out, sync: true, messageKey: "message", translateTime: "SYS:HH:MM:ss.l" }) : out,
  );
  return {
    log: wrap(logger),
    setLevel(next: LogLevel): void {
      logger.level = next;
    },
  };
}
