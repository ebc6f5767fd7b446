import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/free-port.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { createLiveStreamWithKey, topSegments } from "./support/live-api.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { workerReported } from "./support/live-slots.ts";
import { startWorkerProcess, stopAllProcesses } from "./support/processes.ts";
import { waitFor } from "./support/wait-for.ts";

// A broadcast's simulcast target when the worker forwarding it dies (kill -9): the run that takes
// the broadcast over forwards to it again, and the target sees a reconnect (docs/failure-model.md,
// "A live broadcast's simulcast targets"). Real processes: the API, two worker processes serving
// `live`, an ffmpeg publisher, ffmpeg RTMP receivers on the loopback.

const ADD_TARGET = graphql(`
  mutation ($input: AddSimulcastTargetInput!) {
    addSimulcastTarget(input: $input) { __typename ... on SimulcastTarget { id } ... on Error { message } }
  }`);
const TARGETS = graphql(`
  query ($id: ID!) {
    liveStream(id: $id) { status activeVideo { id } simulcastTargets { state lastError updatedAt } } }`);

let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp({
    worker: false,
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      JOB_STALL_SECONDS: "60",
      URL_IMPORT_ALLOW_PRIVATE: "true",
    },
  });
  dir = await mkdtemp(path.join(tmpdir(), "vg-simulcast-takeover-"));
});
afterAll(async () => {
  await stopAllProcesses();
  await t?.stop();
  await rm(dir, { recursive: true, force: true });
});
afterEach(killPublishersOnAir);

const workerEnv = () => ({
  DATABASE_URL: t.database.url,
  DATA_DIR: t.dataDir,
  WORKER_CAPABILITIES: "cpu,live",
  LIVE_PASSTHROUGH: "true",
  PROGRESS_INTERVAL_MS: "250",
  HEARTBEAT_INTERVAL_SECONDS: "2",
});

/** An ffmpeg RTMP server on the loopback taking one publisher, copying what it gets into `file`. */
function rtmpReceiver(port: number, file: string): ChildProcess {
  return spawn(
    "ffmpeg",
    ["-v", "error", "-listen", "1", "-f", "flv", "-i", `rtmp://127.0.0.1:${port}/app/key`, "-c", "copy", "-y", file],
    { stdio: "ignore" },
  );
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.on("exit", () => resolve()));

describe("a simulcast target when the worker forwarding to it dies", () => {
  it("kill -9 of the worker: the run taking the broadcast over connects to the target again", async () => {
    const port = await freePort();
    const first = rtmpReceiver(port, path.join(dir, "first.flv"));
    const worker = await startWorkerProcess("simulcast-worker-first", workerEnv());
    await workerReported(t.database, "simulcast-worker-first");
    const stream = await createLiveStreamWithKey(t, "Simulcast takeover");
    const added = await t.gql(ADD_TARGET, {
      input: { liveStreamId: stream.id, name: "Receiver", url: `rtmp://127.0.0.1:${port}/app`, streamKey: "key" },
    });
    expectTypename(added.data.addSimulcastTarget, "SimulcastTarget");
    const publisher = publishUntilStopped(`${stream.ingestUrl}/${stream.key}`);
    const state = async () => (await t.gql(TARGETS, { id: stream.id })).data.liveStream!;
    await waitFor("the target LIVE", state, (s) => s.status === "LIVE" && s.simulcastTargets[0]!.state === "LIVE");
    const videoId = (await state()).activeVideo!.id;

    const liveSince = (await state()).simulcastTargets[0]!.updatedAt;
    await worker.stop("SIGKILL");
    // Its forwarding ffmpeg died with it: the target's connection ended.
    await exited(first);
    const againFile = path.join(dir, "again.flv");
    const again = rtmpReceiver(port, againFile);
    const before = (await topSegments(t.dataDir, videoId)).length;
    const second = await startWorkerProcess("simulcast-worker-second", workerEnv());
    await waitFor(
      "the takeover",
      () => topSegments(t.dataDir, videoId),
      (s) => s.length > before + 2,
      30_000,
    );
    // LIVE again as the new run reports it (the dead run said nothing more).
    await waitFor(
      "the target LIVE again",
      state,
      (s) => s.simulcastTargets[0]!.state === "LIVE" && s.simulcastTargets[0]!.updatedAt !== liveSince,
      20_000,
    );

    await publisher.stop();
    const ended = await waitFor("the end", state, (s) => s.status === "ENDED", 45_000);
    expect(ended.simulcastTargets[0]!.state).toBe("STOPPED");
    await exited(again);
    // The reconnected target got the publisher's stream again, copied.
    const { stdout } = await promisify(execFile)("ffprobe", [
      ...["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", againFile],
    ]);
    expect(stdout.trim().split("\n").sort()).toEqual(["aac", "h264,320,240"]);
    await second.stop("SIGTERM");
  }, 150_000);
});
