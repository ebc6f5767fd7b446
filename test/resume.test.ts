import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { type ServiceProcess, startWorkerProcess } from "./support/processes.ts";
import { createUpload } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { largestGap, packetTimes } from "./support/media-checks.ts";

const run = promisify(execFile);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status playable } } }`);
const RESULT = graphql(`query($id: ID!) {
  video(id: $id) {
    status duration
    variants { name status segmentCount progress }
    jobs(first: 1) { edges { node { status attempt runs { workerId status startedAt finishedAt resumedSegments \
resumedFromSeconds } } } }
  } }`);

function segmentsOf(text: string): { uri: string; duration: number }[] {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest.segments;
}

/** Segments listed by each rung's published playlist (0 for a rung not published yet). */
async function publishedSegmentCounts(hlsDir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  // The ladder of a 640x360 source.
  for (const rung of ["360p", "240p", "144p", "audio"]) {
    const file = path.join(hlsDir, rung, "index.m3u8");
    counts.set(rung, existsSync(file) ? segmentsOf(await readFile(file, "utf8").catch(() => "")).length : 0);
  }
  return counts;
}

// The two formats wait for the same stall, each with its own API and workers: side by side.
describe.concurrent.each([
  { format: "TS", ext: "ts" },
  { format: "FMP4", ext: "m4s" },
] as const)(
  "a transcode retried after its worker died resumes from what was published (public API, real workers, \
$format)",
  ({ format, ext }) => {
    let t: TestApp;
    const workerEnv = () => ({
      DATABASE_URL: t.database.url,
      DATA_DIR: t.dataDir,
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "2",
    });
    beforeAll(async () => {
      // A dead worker's job is taken over once it has been silent this long (the least allowed).
      t = await startTestApp({ worker: false, env: { JOB_STALL_SECONDS: "10" } });
    });
    // This format's workers only: the other format runs beside it, and its afterAll comes first when it
    // ends first (stopping every process of the file there killed this format's second worker mid-job).
    const workers: ServiceProcess[] = [];
    const startWorker = async (name: string) => {
      const worker = await startWorkerProcess(name, workerEnv());
      workers.push(worker);
      return worker;
    };
    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop("SIGKILL")));
      await t.stop();
    });

    it(`kill -9 mid-encode: the next run keeps the published segments, encodes the rest, and the video \
plays through`, async () => {
      // What is kept and resumed, not how many rungs: a 360p ladder (three video rungs and the audio), on
      // a clip long enough that the kill after three segments comes well before the end (six more
      // segments to encode). About half the encoding and a third fewer decodes of a 12 s 540p ladder.
      const seconds = 16;
      const clip = await makeClip({ width: 640, height: 360, seconds, audio: true });
      const first = await startWorker("worker-first");
      const { id, uploadUrl } = await createUpload(t, "resumed", { segmentFormat: format });
      const final = collectSubscription(t.wsClient(), EVENTS, { id }).done;
      expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);

      const hlsDir = path.join(t.dataDir, "videos", id, "hls");
      await expect
        .poll(async () => Math.min(...(await publishedSegmentCounts(hlsDir)).values()), {
          timeout: 60_000,
          interval: 50,
        })
        .toBeGreaterThanOrEqual(3);
      await first.stop("SIGKILL");
      const publishedAtKill = await publishedSegmentCounts(hlsDir);
      // A 1 s first segment, then 2 s ones: seconds / 2 + 1 segments per video rung.
      const segmentCount = seconds / 2 + 1;
      expect(Math.max(...publishedAtKill.values()), "the kill came before the end").toBeLessThan(segmentCount);
      // The segments every rung had published; the next run must keep them as they are.
      const keptMtimes = new Map<string, number>();
      for (const rung of publishedAtKill.keys()) {
        for (let i = 0; i < Math.min(...publishedAtKill.values()); i++) {
          const file = `${rung}/seg_${String(i).padStart(5, "0")}.${ext}`;
          keptMtimes.set(file, (await stat(path.join(hlsDir, file))).mtimeMs);
        }
        const init = `${rung}/init.mp4`;
        if (format === "FMP4") keptMtimes.set(init, (await stat(path.join(hlsDir, init))).mtimeMs);
      }

      await startWorker("worker-second");
      expect((await final).at(-1)!.videoEvents.video).toEqual({ status: "READY", playable: true });

      const video = (await t.gql(RESULT, { id })).data.video!;
      const job = video.jobs.edges[0]!.node;
      expect(job.status).toBe("SUCCEEDED");
      // The redelivery may reach the second worker while the killed run's last heartbeat is still fresh:
      // being the transport's later delivery of the same message, it takes the job over all the same.
      const runs = job.runs;
      expect(runs.map((r) => [r.workerId, r.status])).toEqual([
        ["worker-first", "ABANDONED"],
        ["worker-second", "SUCCEEDED"],
      ]);
      const dead = runs[0]!;
      const resumed = runs[1]!;
      expect(dead.resumedSegments).toBeNull();
      // It kept at least what every rung had published when the first worker died, and encoded the rest.
      expect(resumed.resumedSegments).toBeGreaterThanOrEqual(Math.min(...publishedAtKill.values()));
      expect(resumed.resumedSegments).toBeLessThan(segmentCount);
      expect(resumed.resumedFromSeconds).toBe(1 + (resumed.resumedSegments! - 1) * 2);
      expect(new Date(dead.finishedAt!).getTime()).toBeLessThanOrEqual(new Date(resumed.startedAt).getTime());

      for (const [file, mtime] of keptMtimes)
        expect((await stat(path.join(hlsDir, file))).mtimeMs, `${file} kept as the first worker wrote it`).toBe(mtime);
      expect(video.variants.map((v) => v.name).sort()).toEqual([...publishedAtKill.keys()].sort());
      for (const variant of video.variants) {
        const playlistFile = path.join(hlsDir, variant.name, "index.m3u8");
        const segments = segmentsOf(await readFile(playlistFile, "utf8"));
        expect(variant).toMatchObject({ status: "READY", progress: 1, segmentCount: segments.length });
        if (variant.name !== "audio") {
          expect(segments, variant.name).toHaveLength(segmentCount);
          expect(segments[0]!.duration, `${variant.name}: the short first segment`).toBeCloseTo(1, 3);
        }
        // An fMP4 segment is read after its rung's init segment, as a player reads it.
        if (format === "FMP4") expect(await readFile(playlistFile, "utf8")).toContain('#EXT-X-MAP:URI="init.mp4"');
        // Each segment around the join decodes on its own, as a player that starts there reads it (after
        // its rung's init segment); then the whole rung is decoded through its playlist.
        const init = format === "FMP4" ? await readFile(path.join(hlsDir, variant.name, "init.mp4")) : Buffer.alloc(0);
        const join = resumed.resumedSegments!;
        for (const segment of segments.slice(Math.max(0, join - 1), join + 1)) {
          const segmentFile = path.join(t.dataDir, "segment-with-init");
          await writeFile(
            segmentFile,
            Buffer.concat([init, await readFile(path.join(hlsDir, variant.name, segment.uri))]),
          );
          const { stderr } = await run("ffmpeg", ["-v", "error", "-i", segmentFile, "-f", "null", "-"]);
          expect(stderr, `${variant.name}/${segment.uri} decodes`).toBe("");
        }
        const whole = await run("ffmpeg", ["-v", "error", "-i", playlistFile, "-f", "null", "-"]);
        expect(whole.stderr, `${variant.name} decodes through its playlist`).toBe("");
        const times = await packetTimes(playlistFile);
        expect(largestGap(times), `${variant.name}: no gap in the timeline`).toBeLessThan(0.05);
        expect(Math.abs(times.at(-1)! - times[0]! - seconds), `${variant.name}: as long as the source`).toBeLessThan(2);
      }
      // Two workers and a 10 s stall to detect: about half a minute on 2 busy cores.
    }, 240_000);
  },
);
