import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";

// A deploy (SIGTERM) of the API holding a broadcast, as `npm start` runs it: its own worker encoding
// the broadcast in the same process group, an ffmpeg publisher over RTMP.

let db: TestDatabase;
let dataDir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), "videograph-live-deploy-"));
});
afterAll(async () => {
  await stopAllProcesses();
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});
afterEach(killPublishersOnAir);

async function sql(text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows;
  } finally {
    await client.end();
  }
}

describe("a deploy of the API holding a broadcast", () => {
  it("SIGTERM: the ingest stops before the worker, the encode finishes with what it has, the recording is READY and the API is gone in seconds", async () => {
    const api = await startApiProcess("api-live-deploy", {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      LOCAL_WORKER: "true",
      LIVE_RTMP_PORT: "0",
      LIVE_SRT_PORT: "off",
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_PASSTHROUGH: "true",
    });
    const gql = async (query: string) =>
      (
        await fetch(`${api.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TEST_ADMIN_KEY}` },
          body: JSON.stringify({ query }),
        })
      ).json();
    const created = await gql(
      `mutation { createLiveStream(input: { title: "Deployed" }) { ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`,
    );
    const { streamKey, liveStream } = created.data.createLiveStream;
    const publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
    await expect
      .poll(async () => (await gql(`{ liveStream(id: "${liveStream.id}") { status } }`)).data.liveStream.status, {
        timeout: 45_000,
        interval: 250,
      })
      .toBe("LIVE");
    // A few seconds on air.
    await new Promise((r) => setTimeout(r, 3000));

    const signalledAt = Date.now();
    expect(await api.stop("SIGTERM")).toBe(0);
    const exitSeconds = (Date.now() - signalledAt) / 1000;
    // Before, the local worker waited its 30 s grace with the feed still open, and the video FAILED.
    expect(exitSeconds).toBeLessThan(15);
    // The publisher was cut off.
    expect(await publisher.exited).not.toBe(0);

    const [stream] = await sql(`SELECT status, "lastError", "activeVideoId" FROM "LiveStream" WHERE id = $1`, [
      liveStream.id,
    ]);
    expect(stream.status).toBe("ENDED");
    const [video] = await sql(`SELECT status, error, duration FROM "Video" WHERE id = $1`, [stream.activeVideoId]);
    expect(video).toMatchObject({ status: "READY", error: null });
    expect(video.duration).toBeGreaterThan(2);
  }, 120_000);
});
