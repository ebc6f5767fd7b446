import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gqlAt } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Record<string, unknown>;
}

/**
 * A local OTLP/HTTP receiver (JSON, what @opentelemetry/exporter-trace-otlp-http sends) on
 * 127.0.0.1: both programs export their spans here, as they would to a collector.
 */
async function startOtlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; stop(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      if (req.url === "/v1/traces") spans.push(...flattenSpans(JSON.parse(body.toString())));
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };
type OtlpAttribute = { key: string; value: OtlpValue };

function flattenSpans(body: {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: {
      spans?: { name: string; traceId: string; spanId: string; parentSpanId?: string; attributes?: OtlpAttribute[] }[];
    }[];
  }[];
}): ReceivedSpan[] {
  const value = (v: OtlpValue) => v.stringValue ?? v.intValue ?? v.boolValue;
  const attributes = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, value(a.value)]));
  return (body.resourceSpans ?? []).flatMap((rs) => {
    const service = String(attributes(rs.resource?.attributes)["service.name"]);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        service,
        name: s.name,
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? "",
        attributes: attributes(s.attributes),
      })),
    );
  });
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 90_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const VIDEO = graphql(`query($id: ID!) { video(id: $id) { status jobs(first: 1) { edges { node { id } } } } }`);

const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] the Pub/Sub case is SKIPPED: ${pubSubEmulatorUnavailableReason}`);

const transports = [
  { transport: "postgres", project: undefined },
  { transport: "pubsub", project: `videograph-trace-${randomUUID().slice(0, 8)}` },
] as const;

describe.each(transports)(
  "one trace from upload to READY across the API and a worker process (TRANSPORT=$transport)",
  ({ transport, project }) => {
    let db: TestDatabase;
    let dataDir: string;
    let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
    let api: ServiceProcess & { url: string };
    let worker: ServiceProcess;
    const skip = transport === "pubsub" && !emulator;

    beforeAll(async () => {
      if (skip) return;
      db = await createTestDatabase();
      dataDir = await mkdtemp(path.join(tmpdir(), "videograph-trace-"));
      receiver = await startOtlpReceiver();
      const env = {
        DATABASE_URL: db.url,
        DATA_DIR: dataDir,
        TRANSPORT: transport,
        GOOGLE_CLOUD_PROJECT: project,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "200",
        LOG_FORMAT: "json",
      };
      api = await startApiProcess(`api-${transport}`, { ...env, HLS_SEGMENT_SECONDS: "2" });
      worker = await startWorkerProcess(`worker-${transport}`, {
        ...env,
        PROGRESS_INTERVAL_MS: "250",
        HEARTBEAT_INTERVAL_SECONDS: "2",
      });
    }, 120_000);
    afterAll(async () => {
      await stopAllProcesses();
      await receiver?.stop();
      await db?.drop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it.skipIf(skip)(
      "links upload → dispatch → job → probe → encode → publish → READY, and the logs carry the trace",
      async () => {
        const clip = await makeClip({ width: 640, height: 360, seconds: 4, audio: true });
        const { uploadUrl, id: videoId } = await createUpload(api.url, "traced");
        const put = await fetch(new URL(uploadUrl, api.url), { method: "PUT", body: await readFile(clip) });
        expect([200, 201]).toContain(put.status);
        const ready = await waitFor("READY", async () => {
          const v = (await gqlAt(api.url, VIDEO, { id: videoId })).video!;
          return v.status === "READY" ? v : undefined;
        });
        const jobId: string = ready.jobs.edges[0]!.node.id;

        const readySpan = await waitFor("the video ready span", () =>
          receiver.spans.find((s) => s.name === "video ready" && s.attributes["video.id"] === videoId),
        );
        // Each program exports its spans on its own schedule, and the worker's job span ends last of
        // its spans: after the job.succeeded it sent has been published, so the API may ingest that
        // event and export its spans first. Wait for every span the checks below name.
        const spansOf = () => receiver.spans.filter((s) => s.traceId === readySpan.traceId);
        const expected = [
          "PUT /uploads/{videoId}",
          "upload complete",
          "dispatch job",
          "job transcode",
          "probe",
          "encode",
          "publish",
          "ingest job.succeeded",
        ];
        await waitFor(
          `the spans ${expected.join(", ")}`,
          () => {
            const names = new Set(spansOf().map((s) => s.name));
            return expected.every((name) => names.has(name)) ? true : undefined;
          },
          10_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}; have ${spansOf().map((s) => s.name)}`);
        });
        const spans = spansOf();
        const one = (name: string, service: string) => {
          const found = spans.filter((s) => s.name === name);
          expect(
            found.map((s) => s.name),
            `one span ${name} in ${spans.map((s) => s.name)}`,
          ).toEqual([name]);
          expect(found[0]!.service).toBe(service);
          return found[0]!;
        };
        const childOf = (child: ReceivedSpan, parent: ReceivedSpan) =>
          expect(child.parentSpanId, `${child.name} is a child of ${parent.name}`).toBe(parent.spanId);

        const upload = one("PUT /uploads/{videoId}", "videograph-api");
        expect(upload.parentSpanId).toBe("");
        const complete = one("upload complete", "videograph-api");
        const dispatch = one("dispatch job", "videograph-api");
        const job = one("job transcode", "videograph-worker");
        const probe = one("probe", "videograph-worker");
        const encode = one("encode", "videograph-worker");
        const publish = one("publish", "videograph-worker");
        const succeeded = one("ingest job.succeeded", "videograph-api");
        const readyInTrace = one("video ready", "videograph-api");

        childOf(complete, upload);
        childOf(dispatch, complete);
        childOf(job, dispatch);
        for (const step of [probe, encode, publish]) childOf(step, job);
        childOf(succeeded, job);
        childOf(readyInTrace, succeeded);
        expect(dispatch.attributes).toMatchObject({ "job.id": jobId, "video.id": videoId });
        expect(job.attributes).toMatchObject({ "job.id": jobId, "video.id": videoId, "job.attempt": 1 });
        // Every other event the worker sent joined the trace too, under the job.
        for (const type of ["job.started", "job.probed", "video.playable", "variant.ready"]) {
          const ingested = spans.filter((s) => s.name === `ingest ${type}`);
          expect(ingested.length, type).toBeGreaterThan(0);
          for (const s of ingested) expect(s.service).toBe("videograph-api");
        }

        // The worker's lines about the job carry its ids and the trace Cloud Logging groups them by.
        const traceField = project ? `projects/${project}/traces/${readySpan.traceId}` : readySpan.traceId;
        const workerLines = worker
          .log()
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        for (const message of ["job started", "encoding from the start", "job finished"]) {
          const line = workerLines.find((l) => l.message === message && l.jobId === jobId);
          expect(line, message).toMatchObject({
            severity: "INFO",
            component: "worker",
            jobId,
            videoId,
            attempt: 1,
            "logging.googleapis.com/trace": traceField,
            "logging.googleapis.com/spanId": expect.stringMatching(/^[0-9a-f]{16}$/),
          });
        }
        const dispatched = api
          .log()
          .split("\n")
          .find((l) => l.includes('"message":"job dispatched"') && l.includes(jobId));
        expect(JSON.parse(dispatched!)).toMatchObject({
          severity: "INFO",
          videoId,
          "logging.googleapis.com/trace": traceField,
          "logging.googleapis.com/spanId": dispatch.spanId,
        });
        // The upload's request woke the dispatcher, but the batch is not that request's work.
        expect(JSON.parse(dispatched!)).not.toHaveProperty("requestId");
      },
      240_000,
    );
  },
);
