import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";

/**
 * Traces of both programs (OpenTelemetry): job messages and worker events carry a W3C `traceparent`, so one
 * trace follows a video from upload to READY. Off unless an OTLP endpoint is configured: spans are no-ops.
 */
const tracer = trace.getTracer("videograph");
const w3c = new W3CTraceContextPropagator();

export interface Tracing {
  /** Exports the spans still buffered and stops; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

/** Whether the standard OpenTelemetry variables ask for traces to be exported (OTLP over HTTP). */
function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === "true" || env.OTEL_TRACES_EXPORTER === "none") return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts exporting spans over OTLP/HTTP when `tracingConfigured`: the exporter reads the standard
 * variables (OTEL_EXPORTER_OTLP_ENDPOINT, …_HEADERS, …_TRACES_ENDPOINT); the service is
 * OTEL_SERVICE_NAME or `serviceName`. The SDK, the exporter and the context manager are imported
 * only then: with tracing off a program does not load them (what that saves: docs/performance.md, "Memory").
 */
export async function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!tracingConfigured(env)) return { shutdown: async () => {} };
  const [
    { AsyncLocalStorageContextManager },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    { BatchSpanProcessor, TracerProvider },
  ] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace"),
  ]);
  const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME || serviceName }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter(),
        ...(Number.isFinite(delay) && delay > 0 ? { scheduledDelayMillis: delay } : {}),
      }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(w3c);
  trace.setGlobalTracerProvider(provider);
  return { shutdown: () => provider.shutdown() };
}

/** The `traceparent` of the span active in `ctx`, for a message; undefined when there is none. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: { traceparent?: string } = {};
  w3c.inject(ctx, carrier, { set: (c, key, value) => ((c as Record<string, string>)[key] = value) });
  return carrier.traceparent;
}

/** The context a message's `traceparent` continues; a new trace when it has none (or a malformed one). */
export function contextOf(traceparent: string | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return w3c.extract(ROOT_CONTEXT, { traceparent }, { get: (c, key) => c[key as "traceparent"], keys: Object.keys });
}

interface SpanOptions {
  attributes?: Attributes;
  /** The parent: a message's context (`contextOf`); default the active span. */
  parent?: Context;
  kind?: SpanKind;
}

/**
 * Runs `fn` in a new span, active for everything `fn` calls: it ends when `fn` settles, with the
 * error recorded when `fn` throws.
 */
export function inSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const { attributes, parent = context.active(), kind = SpanKind.INTERNAL } = options;
  return tracer.startActiveSpan(name, { attributes, kind }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

export { SpanKind };
