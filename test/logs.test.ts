import { Writable } from "node:stream";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLog, detached, withLogFields } from "../src/shared/log.ts";
import { inSpan } from "../src/shared/tracing.ts";

/** A log of the shared module writing into memory instead of stderr. */
function captureLog(env: NodeJS.ProcessEnv) {
  let text = "";
  const destination = new Writable({
    write(chunk, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const { log, setLevel } = createLog({ component: "test" }, { env, destination });
  const records = () =>
    text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, setLevel, records, text: () => text };
}

const TRACE = "logging.googleapis.com/trace";
const SPAN = "logging.googleapis.com/spanId";

describe("log records carry the fields Cloud Logging reads", () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });

  it("maps each level to Cloud Logging's severity, with message and an RFC 3339 time", () => {
    const { log, records } = captureLog({ LOG_LEVEL: "debug", LOG_FORMAT: "json" });
    log.debug("d");
    log.info("i", { n: 1 });
    log.warn("w");
    log.error("e", { err: new Error("boom") });
    const got = records();
    expect(got.map((r) => [r.severity, r.message])).toEqual([
      ["DEBUG", "d"],
      ["INFO", "i"],
      ["WARNING", "w"],
      ["ERROR", "e"],
    ]);
    for (const r of got) {
      expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(r.component).toBe("test");
      // The names Cloud Logging ignores are gone, or every entry lands as DEFAULT.
      expect(r).not.toHaveProperty("level");
      expect(r).not.toHaveProperty("msg");
    }
    expect(got[1]).toMatchObject({ n: 1 });
    expect(got[3]!.err).toMatchObject({ message: "boom", stack: expect.stringContaining("Error: boom") });
  });

  it("writes nothing below LOG_LEVEL until the level is changed", () => {
    const { log, setLevel, records } = captureLog({ LOG_LEVEL: "warn", LOG_FORMAT: "json" });
    log.info("dropped");
    log.warn("kept");
    setLevel("debug");
    log.debug("now kept");
    expect(records().map((r) => r.message)).toEqual(["kept", "now kept"]);
  });

  it("puts the active span's trace and span id on a record, as projects/{project}/traces/{id}", async () => {
    const { log, records } = captureLog({ LOG_FORMAT: "json", GOOGLE_CLOUD_PROJECT: "proj-1" });
    log.info("outside");
    let ids = { traceId: "", spanId: "" };
    await inSpan("work", {}, async (span) => {
      ids = span.spanContext();
      log.info("inside");
    });
    const [outside, inside] = records();
    expect(outside).not.toHaveProperty(TRACE);
    expect(outside).not.toHaveProperty(SPAN);
    expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(inside).toMatchObject({
      [TRACE]: `projects/proj-1/traces/${ids.traceId}`,
      [SPAN]: ids.spanId,
      "logging.googleapis.com/trace_sampled": true,
    });
  });

  it("gives the bare trace id when no project is configured", async () => {
    const { log, records } = captureLog({ LOG_FORMAT: "json" });
    const traceId = await inSpan("work", {}, async (span) => {
      log.warn("inside");
      return span.spanContext().traceId;
    });
    expect(records()[0]![TRACE]).toBe(traceId);
  });

  it("adds the fields of withLogFields (nested) and of a child to every record inside", async () => {
    const { log, records } = captureLog({ LOG_FORMAT: "json" });
    await withLogFields({ requestId: "r1" }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      await withLogFields({ jobId: "j1", videoId: "v1" }, async () => {
        await new Promise((r) => setImmediate(r));
        log.info("deep");
      });
      log.child({ attempt: 2 }).info("child");
    });
    log.info("after");
    const [deep, child, after] = records();
    expect(deep).toMatchObject({ requestId: "r1", jobId: "j1", videoId: "v1", message: "deep" });
    expect(child).toMatchObject({ requestId: "r1", attempt: 2, message: "child" });
    expect(child).not.toHaveProperty("jobId");
    expect(after).not.toHaveProperty("requestId");
  });

  it("leaves the caller's ids and span out of background work it only woke up (detached)", async () => {
    const { log, records } = captureLog({ LOG_FORMAT: "json" });
    let background: Promise<void> = Promise.resolve();
    await withLogFields({ requestId: "r1" }, () =>
      inSpan("request", {}, async () => {
        background = detached(async () => {
          await new Promise((r) => setTimeout(r, 1));
          log.info("batch");
        });
        log.info("request");
      }),
    );
    await background;
    const byMessage = Object.fromEntries(records().map((r) => [r.message, r]));
    expect(byMessage.request).toMatchObject({ requestId: "r1", [SPAN]: expect.any(String) });
    expect(byMessage.batch).not.toHaveProperty("requestId");
    expect(byMessage.batch).not.toHaveProperty(TRACE);
  });

  it("writes an error's type, message, stack and describing properties, not objects it holds (pg's client)", () => {
    const { log, records } = captureLog({ LOG_FORMAT: "json" });
    // What pg's pool emits when the server ends an idle connection: the error with its client attached.
    class Client {
      connectionParameters = { user: "postgres", host: "127.0.0.1" };
      queue = [{ text: "SELECT 1" }];
    }
    const err = Object.assign(new Error("terminating connection due to administrator command"), {
      code: "57P01",
      severity: "FATAL",
      client: new Client(),
      $metadata: { httpStatusCode: 503 },
      cause: new Error("socket closed"),
    });
    log.warn("rate limiter connection lost", { err });
    const record = records()[0]!;
    expect(record.err).toMatchObject({
      type: "Error",
      message: "terminating connection due to administrator command: socket closed",
      code: "57P01",
      severity: "FATAL",
      $metadata: { httpStatusCode: 503 },
    });
    expect(String((record.err as { stack: string }).stack)).toContain("caused by: Error: socket closed");
    expect(record.err).not.toHaveProperty("client");
    expect(JSON.stringify(record)).not.toContain("connectionParameters");
    // A value that is not an error is written as it is.
    log.warn("odd rejection", { err: "a string" });
    expect(records()[1]!.err).toBe("a string");
  });

  it("writes readable lines with LOG_FORMAT=pretty, JSON with LOG_FORMAT=json", () => {
    const pretty = captureLog({ LOG_FORMAT: "pretty" });
    pretty.log.warn("disk nearly full", { freeBytes: 12 });
    const line = pretty.text();
    expect(() => JSON.parse(line.split("\n")[0]!)).toThrow();
    expect(line).toMatch(/WARN.*disk nearly full/);
    expect(line).toContain("freeBytes: 12");
    const json = captureLog({ LOG_FORMAT: "json" });
    json.log.warn("disk nearly full");
    expect(json.records()[0]).toMatchObject({ severity: "WARNING", message: "disk nearly full" });
  });
});
