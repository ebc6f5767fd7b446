import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, gqlAt, wsClientAt } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { graphql } from "./support/graphql.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { createUpload } from "./support/uploads.ts";

const emulator = await startPubSubEmulator();
if (!emulator) console.warn(`[test] two-instance Pub/Sub test SKIPPED: ${pubSubEmulatorUnavailableReason}`);

const EVENTS = graphql(`subscription($id: ID!) {
  videoEvents(videoId: $id) {
    __typename video { status }
    ... on VariantProgressEvent { variant { name } }
  } }`);
const RUNS = graphql(`query($id: ID!) {
  video(id: $id) {
    status variants { name status }
    jobs(first: 5) { edges { node { status runs { workerId status alreadyDone startedAt heartbeatAt finishedAt } } } }
  } }`);

/** The cloud issue's acceptance run, on one machine: every component is its own process. */
describe.skipIf(!emulator)("two API processes, two workers, TRANSPORT=pubsub (real Pub/Sub emulator)", () => {
  let db: TestDatabase;
  let dataDir: string;
  const apis: (ServiceProcess & { url: string })[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-pubsub-multi-"));
    const common = {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      TRANSPORT: "pubsub",
      GOOGLE_CLOUD_PROJECT: `videograph-multi-${randomUUID().slice(0, 8)}`,
      PUBSUB_EMULATOR_HOST: emulator!.host,
      SIGNING_SECRET: "a-shared-secret-for-both-instances-000",
      HLS_SEGMENT_SECONDS: "2",
    };
    for (const name of ["api-a", "api-b"]) apis.push(await startApiProcess(name, common));
    for (const name of ["worker-1", "worker-2"]) {
      await startWorkerProcess(name, { ...common, PROGRESS_INTERVAL_MS: "200", HEARTBEAT_INTERVAL_SECONDS: "2" });
    }
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await stopAllProcesses();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it(`ten uploads at once reach READY, each job on one worker at a time (a redelivered duplicate is stopped within \
seconds), progress seen on both instances`, async () => {
    // 640x360: encodes long enough that a redelivery (the emulator's lease lapsing on a loaded
    // machine) is stopped or takes over before the first run ends; at 320x180 (2 s encodes) a
    // redelivery that took over could see the first run succeed anyway, and both did the work.
    const clips = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        makeClip({ width: 640, height: 360, seconds: 6 + (i % 3), audio: i % 2 === 0 }),
      ),
    );
    const videos = await Promise.all(
      clips.map(async (clip, i) => {
        const api = apis[i % 2]!;
        const { uploadUrl, id } = await createUpload(api.url, `clip ${i}`);
        // A subscriber on each instance, whichever instance ingests the events.
        const subs = apis.map((a) => {
          const client = wsClientAt(a.url);
          clients.push(client);
          return collectSubscription(client, EVENTS, { id });
        });
        await new Promise((r) => setTimeout(r, 200));
        return { id, uploadUrl, api, clip, subs };
      }),
    );
    await Promise.all(
      videos.map(async (v) => {
        const res = await fetch(`${v.api.url}${v.uploadUrl}`, { method: "PUT", body: await readFile(v.clip) });
        expect(res.status).toBe(200);
      }),
    );

    for (const v of videos) {
      const seen = await Promise.all(v.subs.map((s) => s.done));
      // A redelivery that found the output complete can make the video READY (an alreadyDone run)
      // while the run that made it is still reporting its end: the runs are read once none runs.
      let { video } = await gqlAt(apis[0]!.url, RUNS, { id: v.id });
      const settled = () => !video!.jobs.edges[0]!.node.runs.some((r) => r.status === "RUNNING");
      for (let i = 0; i < 100 && !settled(); i++) {
        await new Promise((r) => setTimeout(r, 100));
        ({ video } = await gqlAt(apis[0]!.url, RUNS, { id: v.id }));
      }
      expect(video!.status).toBe("READY");
      const names = video!.variants.map((x) => x.name).sort();
      for (const events of seen) {
        expect(events.at(-1)!.videoEvents.video.status).toBe("READY");
        const progressed = new Set(
          events
            .map((e) => e.videoEvents)
            .filter((e) => e.__typename === "VariantProgressEvent")
            .map((e) => e.variant.name),
        );
        expect([...progressed].sort()).toEqual(names);
      }
      const runs = video!.jobs.edges[0]!.node.runs;
      // One run did the work. Pub/Sub may deliver the job again after it finished: that delivery finds
      // its output complete and does nothing (a SUCCEEDED run with alreadyDone, after the other).
      expect(
        runs.filter((r) => r.status === "SUCCEEDED" && !r.alreadyDone),
        JSON.stringify(runs),
      ).toHaveLength(1);
      // A redelivery while the first worker still runs (a lease lost on a loaded machine) starts a second
      // run. When the lease had lapsed (the delivery attempt rose) the redelivery takes the job over and the
      // earlier run is stopped; else the newcomer is stopped as a duplicate. Either way the stopped run
      // (CANCELED) ends within seconds of the later start. Every other run is alone in time, but for a
      // redelivery that found the output complete and wrote nothing (alreadyDone), which may come
      // while the run that made it reports its end.
      const succeededAt = new Date(runs.find((r) => r.status === "SUCCEEDED" && !r.alreadyDone)!.startedAt).getTime();
      const duplicates = runs.filter((r) => r.status === "CANCELED");
      for (const d of duplicates) {
        const overlapFrom = Math.max(new Date(d.startedAt).getTime(), succeededAt);
        expect(new Date(d.finishedAt!).getTime() - overlapFrom, JSON.stringify(runs)).toBeLessThan(15_000);
      }
      const kept = runs.filter((r) => r.status !== "CANCELED" && !r.alreadyDone);
      for (let i = 1; i < kept.length; i++) {
        expect(new Date(kept[i - 1]!.finishedAt!).getTime(), JSON.stringify(runs)).toBeLessThanOrEqual(
          new Date(kept[i]!.startedAt).getTime(),
        );
      }
    }
    // Which worker gets how many is not asserted: the emulator ignores flow control and may hand
    // every message to the first worker that connects (real Pub/Sub enforces it per stream).
  }, 180_000);
});
