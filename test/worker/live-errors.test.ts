import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { live } from "../../render-worker/handlers/live.ts";
import type { JobContext } from "../../render-worker/handlers/types.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { LiveJobMessage } from "../../src/protocol/live-messages.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { jobDirsPerTest, runFfmpeg } from "../support/media-fixtures.ts";

const JOB_ID = "6b1f0c2e-3d4a-4b5c-8d6e-7f8091a2b3c4";
const VIDEO_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const dirs = jobDirsPerTest("live-errors");

/** A broadcast's job whose feed is at `feedUrl`, and its context with `signal`. */
function broadcastJob(feedUrl: string, signal: AbortSignal, events: JobEventBody[], reconnectWindowSeconds = 30) {
  const job = LiveJobMessage.parse({
    v: 1,
    type: "live",
    jobId: JOB_ID,
    attempt: 1,
    videoId: VIDEO_ID,
    outputPrefix: `videos/${VIDEO_ID}`,
    feedUrl,
    input: { width: 320, height: 240, fps: 25, hasAudio: true },
    options: { segmentSeconds: 2, maxDurationSeconds: 60, reconnectWindowSeconds },
  });
  const ctx: JobContext = {
    storage: createLocalWorkerStorage(dirs.dataDir),
    emit: contractCheckedEmit(JOB_ID, events),
    signal,
    workDir: dirs.workDir,
    progressIntervalMs: 200,
  };
  return { job, ctx };
}

describe("the error a live broadcast's run ends with", () => {
  it("is the abort that stopped it, not a TypeError from rewriting the abort's read-only message", async () => {
    // A publisher's stream as the API's feed serves it: FLV over HTTP, at the media's pace, never ending.
    const flv = path.join(dirs.root, "feed.flv");
    await runFfmpeg([
      ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=20"],
      ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20"],
      ...[
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "flv",
        flv,
      ],
    ]);
    const bytes = await readFile(flv);
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "video/x-flv" });
      let sent = 0;
      const timer = setInterval(() => {
        res.write(bytes.subarray(sent, sent + 4096));
        sent += 4096;
      }, 20);
      res.on("close", () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const feedUrl = `http://127.0.0.1:${port}/live/v1/feeds/${VIDEO_ID}.flv?expires=1&sig=secret`;
      const stop = new AbortController();
      const events: JobEventBody[] = [];
      const { job, ctx } = broadcastJob(feedUrl, stop.signal, events);
      const ended = live(job, ctx).then(
        () => null,
        (e: unknown) => e as Error,
      );
      // Stopped mid-encode (the API queued its encode again, the worker shuts down).
      setTimeout(() => stop.abort(new Error("told to stop")), 3000);
      const err = await ended;
      expect(err?.name).toBe("AbortError");
      expect(err?.message).toContain("canceled");
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);

  it("names the feed it could not read by what it is, never by its URL and signature", async () => {
    // A feed address nothing listens on (its API instance gone).
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const feedUrl = `http://127.0.0.1:${port}/live/v1/feeds/${VIDEO_ID}.flv?expires=1&sig=secret`;
    // A feed that breaks is waited for the stream's reconnect window (and a margin): none here.
    const { job, ctx } = broadcastJob(feedUrl, new AbortController().signal, [], 0);
    const err = await live(job, ctx).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain("the broadcast's feed");
    expect(err?.message).not.toContain("sig=");
    // ffmpeg's "Connection to tcp://…" names the address alone: the API's user-facing errors mask that (test/user-facing-error.test.ts).
  }, 30_000);
});
