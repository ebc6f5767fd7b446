import { readFile, stat } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/free-port.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { parseMetrics, sampleValue, type Sample } from "./support/prometheus-text.ts";
import { createUpload, uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parseMetrics(await res.text());
}

const LADDER = graphql(`query($id: ID!) { video(id: $id) { variants { name status } } }`);
const EVENT_TYPES = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename } }`);

describe("Prometheus metrics of the API and a worker after an upload reaches READY", () => {
  let t: TestApp;
  let workerOps: string;
  let clip: string;
  let clipBytes: number;
  beforeAll(async () => {
    clip = await makeClip({ width: 640, height: 360, seconds: 4, audio: true });
    clipBytes = (await stat(clip)).size;
    const opsPort = await freePort();
    workerOps = `http://127.0.0.1:${opsPort}`;
    t = await startTestApp({ env: { METRICS_PORT: "0" }, workerEnv: { WORKER_OPS_PORT: String(opsPort) } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("serves the metrics on their own listener only, not on the API's port", async () => {
    expect(t.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(t.metricsUrl!).port).not.toBe(new URL(t.url).port);
    const publicAttempt = await fetch(`${t.url}/metrics`);
    expect(publicAttempt.status).toBe(404);
    expect(await publicAttempt.text()).not.toContain("# HELP");
    expect((await fetch(`${t.metricsUrl!.replace(/\/metrics$/, "/other")}`)).status).toBe(404);
  });

  it("counts the upload, the job, its dispatch, the GraphQL requests and the worker's encode", async () => {
    await expect.poll(async () => (await fetch(`${workerOps}/readyz`)).status, { timeout: 30_000 }).toBe(200);
    // An operation name a client chose must not become a label (one series per name would be unbounded).
    const clientChosen = "ClientChosen_7f3a9c";
    // A string on purpose: the operation selects a field the schema does not have (refused in validation).
    const res = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: `query ${clientChosen} { noSuchField }`, operationName: clientChosen }),
    });
    expect(res.status).toBeLessThan(500);

    const final = await uploadAndWait(t, new Uint8Array(await readFile(clip)), "metrics");
    expect(final.status).toBe("READY");
    const rungs = (await t.gql(LADDER, { id: final.id })).data.video!.variants;
    expect(rungs.length).toBeGreaterThan(1);

    const api = await scrape(t.metricsUrl!);
    expect(sampleValue(api, "videograph_upload_bytes_total")).toBe(clipBytes);
    expect(sampleValue(api, "videograph_uploads_completed_total")).toBe(1);
    expect(sampleValue(api, "videograph_jobs", { kind: "TRANSCODE", queue: "cpu", status: "SUCCEEDED" })).toBe(1);
    expect(sampleValue(api, "videograph_job_dispatch_latency_seconds_count", { queue: "cpu" })).toBe(1);
    const dispatchSeconds = sampleValue(api, "videograph_job_dispatch_latency_seconds_sum", { queue: "cpu" })!;
    expect(dispatchSeconds).toBeGreaterThanOrEqual(0);
    expect(dispatchSeconds).toBeLessThan(60);
    expect(
      sampleValue(api, "videograph_http_request_duration_seconds_count", {
        route: "upload",
        method: "PUT",
        status: "200",
      }),
    ).toBe(1);
    expect(sampleValue(api, "graphql_envelop_request_duration_count", { operationType: "mutation" })).toBeGreaterThan(
      0,
    );
    expect(sampleValue(api, "graphql_yoga_http_duration_count", { operationType: "query" })).toBeGreaterThan(0);
    expect(sampleValue(api, "process_cpu_seconds_total")).toBeGreaterThan(0);
    // The refused operation was counted, without its name.
    expect(sampleValue(api, "graphql_envelop_error_result", { phase: "validate" })).toBeGreaterThanOrEqual(1);
    const labelNames = new Set(api.flatMap((s) => Object.keys(s.labels)));
    for (const name of ["operationName", "url", "path", "videoId", "tenantId"]) expect(labelNames).not.toContain(name);
    expect(api.some((s) => Object.values(s.labels).some((v) => v.includes(clientChosen) || v.includes(final.id)))).toBe(
      false,
    );

    const worker = await scrape(`${workerOps}/metrics`);
    expect(
      sampleValue(worker, "videograph_worker_job_duration_seconds_count", { type: "transcode", outcome: "succeeded" }),
    ).toBe(1);
    expect(
      sampleValue(worker, "videograph_worker_job_duration_seconds_sum", { type: "transcode", outcome: "succeeded" }),
    ).toBeGreaterThan(0);
    expect(sampleValue(worker, "videograph_worker_jobs_in_flight", { type: "transcode" })).toBe(0);
    for (const rung of rungs) {
      const encoder = rung.name === "audio" ? "aac" : "libx264";
      expect(sampleValue(worker, "videograph_worker_encode_realtime_factor_count", { rung: rung.name, encoder })).toBe(
        1,
      );
      expect(
        sampleValue(worker, "videograph_worker_encode_realtime_factor_sum", { rung: rung.name, encoder }),
      ).toBeGreaterThan(0);
      if (rung.name !== "audio") {
        // A lavfi clip at 25 fps: frames per second = realtime factor × 25.
        const fps = sampleValue(worker, "videograph_worker_encode_fps_sum", { rung: rung.name, encoder })!;
        const rtf = sampleValue(worker, "videograph_worker_encode_realtime_factor_sum", { rung: rung.name, encoder })!;
        expect(fps).toBeCloseTo(rtf * 25, 3);
      }
    }
    const cpu = sampleValue(worker, "videograph_worker_ffmpeg_cpu_seconds_total")!;
    expect(cpu).toBeGreaterThan(0);
    // The encode of a 4 s clip takes less than a minute of CPU even on a loaded machine.
    expect(cpu).toBeLessThan(60);
  });

  it("counts open graphql-ws connections and running subscriptions, and lets them go", async () => {
    const before = await scrape(t.metricsUrl!);
    const client = t.wsClient();
    const { id } = await createUpload(t, "waiting");
    const sub = collectSubscription(client, EVENT_TYPES, { id });
    void sub.done.catch(() => {});
    await expect
      .poll(async () => sampleValue(await scrape(t.metricsUrl!), "videograph_graphql_subscriptions_active"), {
        timeout: 10_000,
      })
      .toBe((sampleValue(before, "videograph_graphql_subscriptions_active") ?? 0) + 1);
    expect(sampleValue(await scrape(t.metricsUrl!), "videograph_websocket_connections")).toBe(
      (sampleValue(before, "videograph_websocket_connections") ?? 0) + 1,
    );
    await client.dispose();
    await expect
      .poll(
        async () => {
          const now = await scrape(t.metricsUrl!);
          return [
            sampleValue(now, "videograph_websocket_connections"),
            sampleValue(now, "videograph_graphql_subscriptions_active"),
          ];
        },
        { timeout: 10_000 },
      )
      .toEqual([
        sampleValue(before, "videograph_websocket_connections") ?? 0,
        sampleValue(before, "videograph_graphql_subscriptions_active") ?? 0,
      ]);
  });
});
