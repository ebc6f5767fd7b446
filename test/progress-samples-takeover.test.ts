import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { collectSubscription, wsClientAt } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { graphql } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses } from "./support/processes.ts";
import { createUpload } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) {
  videoEvents(videoId: $id) {
    __typename video { status }
    ... on VariantProgressEvent { variant { name progress } }
  } }`);

/**
 * The fleet's progress samples (NOTIFY, no queue row: src/transport/progress-samples.ts) are taken by
 * one API instance; when it dies (SIGKILL, real processes) another takes over within seconds and the
 * video's subscribers on it hear progress again while the encode goes on.
 */
let db: TestDatabase;
let dataDir: string;
const clients: Client[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), "videograph-samples-"));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await stopAllProcesses();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

it("the instance taking progress samples is killed mid-encode: another takes over within seconds and its subscribers hear progress", async () => {
  const common = {
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    SIGNING_SECRET: "a-shared-secret-for-both-instances-000",
    HLS_SEGMENT_SECONDS: "2",
    CHUNK_SECONDS: "0",
  };
  const taker = await startApiProcess("api-taker", common);
  await taker.waitForLog("progress samples: this instance takes them", 10_000);
  const other = await startApiProcess("api-other", common);
  await startWorkerProcess("worker", { ...common, PROGRESS_INTERVAL_MS: "200", X264_PRESET: "medium" });
  const clip = await makeClip({ width: 960, height: 540, seconds: 12, audio: true });

  const client = wsClientAt(other.url);
  clients.push(client);
  const { id, uploadUrl } = await createUpload(other.url, "samples-takeover");
  const received: { at: number; progress: number }[] = [];
  const events = collectSubscription(client, EVENTS, { id });
  let lastStatus: string | null = null;
  const take = () => {
    for (const { videoEvents: ev } of events.events.splice(0)) {
      lastStatus = ev.video.status;
      if (ev.__typename === "VariantProgressEvent") received.push({ at: Date.now(), progress: ev.variant.progress });
    }
  };
  const seen = setInterval(take, 20);
  try {
    expect((await fetch(`${other.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    // Progress reaches the other instance's subscriber: taken by the taker, fanned out through Postgres.
    await expect.poll(() => received.length, { timeout: 60_000, interval: 50 }).toBeGreaterThan(0);
    expect(other.log()).not.toContain("progress samples: this instance takes them");

    const killedAt = Date.now();
    await taker.stop("SIGKILL");
    await other.waitForLog("progress samples: this instance takes them", 10_000);
    await expect.poll(() => received.some((r) => r.at > killedAt), { timeout: 10_000, interval: 50 }).toBe(true);
    const firstAfter = received.find((r) => r.at > killedAt)!;
    // The other instance tries for the lock every 2 s: within about that, plus a sample's interval.
    expect(firstAfter.at - killedAt).toBeLessThan(5000);
    expect(firstAfter.progress).toBeLessThan(1);
    // The encode's other events go through the queue as before: the video ends READY.
    await events.done;
    take();
    expect(lastStatus).toBe("READY");
  } finally {
    clearInterval(seen);
  }
});
