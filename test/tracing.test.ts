import { randomUUID } from "node:crypto";
import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseJobMessage } from "../src/protocol/job-message.ts";
import { parseWorkerEvent } from "../src/protocol/worker-messages.ts";
import { TranscodeJobMessage } from "../src/protocol/transcode-messages.ts";
import { contextOf, inSpan, startTracing, traceparentOf } from "../src/shared/tracing.ts";

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

const transcodeMessage = (extra: Record<string, unknown> = {}) => ({
  v: 2,
  type: "transcode",
  jobId: randomUUID(),
  attempt: 1,
  videoId: randomUUID(),
  sourceKey: "videos/x/source/upload",
  outputPrefix: "videos/x",
  ...extra,
});
const startedEvent = (extra: Record<string, unknown> = {}) => ({
  v: 2,
  type: "job.started",
  jobId: randomUUID(),
  attempt: 1,
  seq: 1,
  workerId: "w",
  at: new Date().toISOString(),
  ...extra,
});

describe("traceparent in the contract: optional and additive", () => {
  it("keeps a job message's and a worker event's traceparent", () => {
    expect(parseJobMessage(transcodeMessage({ traceparent: TRACEPARENT })).traceparent).toBe(TRACEPARENT);
    const event = parseWorkerEvent(startedEvent({ traceparent: TRACEPARENT }));
    expect(event.type === "job.started" && event.traceparent).toBe(TRACEPARENT);
  });

  it("reads messages without one (senders of version 2 before the field) and drops a malformed one", () => {
    expect(parseJobMessage(transcodeMessage()).traceparent).toBeUndefined();
    for (const bad of ["00-zz", `${TRACEPARENT}-extra`, 42, "x".repeat(10_000)]) {
      const job = parseJobMessage(transcodeMessage({ traceparent: bad }));
      expect(job.traceparent, String(bad).slice(0, 40)).toBeUndefined();
      const event = parseWorkerEvent(startedEvent({ traceparent: bad }));
      expect(event.type === "job.started" && event.traceparent).toBeUndefined();
    }
  });

  it("is dropped, not refused, by a reader whose schema lacks it (version 2 as released)", () => {
    const released = TranscodeJobMessage.omit({ traceparent: true });
    const parsed = released.parse(transcodeMessage({ traceparent: TRACEPARENT }));
    expect(parsed).not.toHaveProperty("traceparent");
  });
});

// First: a tracer keeps the provider it found once one is registered.
describe("tracing off", () => {
  it("registers nothing without an OTLP endpoint: spans are no-ops and messages carry no traceparent", async () => {
    const tracing = await startTracing("videograph-test", {});
    await inSpan("unrecorded", {}, async (span) => {
      expect(span.isRecording()).toBe(false);
      expect(traceparentOf()).toBeUndefined();
    });
    await tracing.shutdown();
  });
});

describe("spans and trace context (in-memory exporter)", () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
  });
  afterEach(() => exporter.reset());
  afterAll(() => {
    trace.disable();
    context.disable();
  });

  it("a message's traceparent continues the sender's span in the receiver", async () => {
    expect(traceparentOf()).toBeUndefined();
    const sent = await inSpan("send", {}, async () => traceparentOf());
    expect(sent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await inSpan("receive", { parent: contextOf(sent) }, async () => {
      await inSpan("step", {}, async () => {});
    });
    const spans = Object.fromEntries(exporter.getFinishedSpans().map((s) => [s.name, s]));
    const send = spans.send!.spanContext();
    expect(spans.receive!.spanContext().traceId).toBe(send.traceId);
    expect(spans.receive!.parentSpanContext?.spanId).toBe(send.spanId);
    expect(spans.step!.parentSpanContext?.spanId).toBe(spans.receive!.spanContext().spanId);
  });

  it("a message without a traceparent starts a new trace, not a child of whatever is active", async () => {
    await inSpan("outer", {}, async () => {
      await inSpan("fresh", { parent: contextOf(undefined) }, async () => {});
    });
    const spans = Object.fromEntries(exporter.getFinishedSpans().map((s) => [s.name, s]));
    expect(spans.fresh!.parentSpanContext).toBeUndefined();
    expect(spans.fresh!.spanContext().traceId).not.toBe(spans.outer!.spanContext().traceId);
  });

  it("records a failure on the span and still throws it", async () => {
    await expect(
      inSpan("fails", {}, async () => {
        throw new Error("ffmpeg exited with 1");
      }),
    ).rejects.toThrow("ffmpeg exited with 1");
    const [span] = exporter.getFinishedSpans();
    expect(span!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: "ffmpeg exited with 1" });
    expect(span!.events.map((e) => e.name)).toContain("exception");
  });
});
