import { copyFile, mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { encodeAudioTrack } from "../../render-worker/handlers/audio-track.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { AudioTrackJobMessage } from "../../src/protocol/audio-track-messages.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { audioTrackPrefix, audioTrackSourceKey } from "../../src/protocol/storage-layout.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { jobDirsPerTest, makeTone } from "../support/media-fixtures.ts";

const JOB_ID = "5a0c1f3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b";
const VIDEO_ID = "7b1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TRACK_ID = "9c2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a";

const dirs = jobDirsPerTest("audio-track");

async function run(segmentFormat: "TS" | "FMP4"): Promise<JobEventBody[]> {
  const events: JobEventBody[] = [];
  const workDir = path.join(dirs.workDir, String(Math.random()).slice(2));
  await mkdir(workDir, { recursive: true });
  try {
    await encodeAudioTrack(
      AudioTrackJobMessage.parse({
        v: 2,
        type: "audio_track",
        jobId: JOB_ID,
        attempt: 1,
        videoId: VIDEO_ID,
        trackId: TRACK_ID,
        source: { kind: "stored", key: audioTrackSourceKey(VIDEO_ID, TRACK_ID) },
        maxBytes: 10_000_000,
        outputPrefix: audioTrackPrefix(VIDEO_ID, TRACK_ID),
        durationSeconds: 3,
        segmentSeconds: 2,
        segmentFormat,
      }),
      {
        storage: createLocalWorkerStorage(dirs.dataDir),
        emit: contractCheckedEmit(JOB_ID, events),
        signal: new AbortController().signal,
        workDir,
        progressIntervalMs: 50,
      },
    );
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  return events;
}

describe("the AUDIO_TRACK handler", () => {
  it.each(["TS", "FMP4"] as const)(
    "%s: publishes one ended rung of the video's length and no master; a second delivery's write-once segments stand",
    async (segmentFormat) => {
      const source = path.join(dirs.dataDir, audioTrackSourceKey(VIDEO_ID, TRACK_ID));
      await mkdir(path.dirname(source), { recursive: true });
      await copyFile(await makeTone(5, 440, "wav"), source);
      const first = await run(segmentFormat);
      expect(first.at(-1)).toMatchObject({ type: "audio_track.done", publishedSeconds: expect.closeTo(3, 1) });
      expect((first.at(-1) as { sourceDuration: number }).sourceDuration).toBeCloseTo(5, 1);
      const hls = path.join(dirs.dataDir, audioTrackPrefix(VIDEO_ID, TRACK_ID), "hls");
      expect(await readdir(hls)).toEqual(["track"]);
      const playlist = await readFile(path.join(hls, "track", "index.m3u8"), "utf8");
      expect(playlist).toContain("#EXT-X-ENDLIST");
      expect(playlist.match(/^#EXTINF:/gm)).toHaveLength(2);
      // Delivered again (a redelivery, a retried attempt): the same bytes, so nothing conflicts.
      const second = await run(segmentFormat);
      expect(second.at(-1)?.type).toBe("audio_track.done");
      expect(await readFile(path.join(hls, "track", "index.m3u8"), "utf8")).toBe(playlist);
    },
  );
});
