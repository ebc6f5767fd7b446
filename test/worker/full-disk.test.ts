import { stat } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { canMountTmpfs, mountSmallDisk } from "../support/tmpfs.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { jobDirsPerTest, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";

const JOB_ID = "3c1d1e9a-6f0b-4f57-9d1e-2b8a4c6e1f01";
const VIDEO_ID = "b7c0e2a4-1d3f-4e5a-9b6c-7d8e9f0a1b2c";
const dirs = jobDirsPerTest("full-disk");

async function jobFor(clip: string, segmentFormat: "TS" | "FMP4"): Promise<TranscodeJobMessage> {
  const job = await stageTranscodeJob(dirs.dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
  return { ...job, options: { ...job.options, segmentFormat } };
}

async function transcodeOnce(job: TranscodeJobMessage, events: JobEventBody[]): Promise<unknown> {
  const emit = contractCheckedEmit(JOB_ID, events);
  const ctx = {
    storage: createLocalWorkerStorage(dirs.dataDir),
    emit,
    signal: new AbortController().signal,
    workDir: dirs.workDir,
    progressIntervalMs: 200,
  };
  return transcode(job, ctx).then(
    () => null,
    (err: unknown) => err,
  );
}

// A real ENOSPC from a small tmpfs: mounting one needs root.
describe.skipIf(!canMountTmpfs).each(["TS", "FMP4"] as const)(
  "transcode on a full disk (tmpfs; needs root; %s)",
  (format) => {
    it(`storage filling up mid-ladder fails the attempt, retryable, and no rung fails alone or goes READY \
without the others`, async () => {
      const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
      // Room for the source and a little more, not for the ladder.
      const disk = await mountSmallDisk(dirs.dataDir, (await stat(clip)).size + 384 * 1024);
      try {
        const events: JobEventBody[] = [];
        const failure = await transcodeOnce(await jobFor(clip, format), events);
        expect(failure).toMatchObject({ name: "StorageUnavailableError", full: true, retryable: true });
        expect((failure as Error).message).toMatch(/^Storage is full: ENOSPC/);
        const types = events.map((e) => e.type);
        expect(types).not.toContain("variant.failed");
        expect(types).not.toContain("variant.ready");
        expect(types).not.toContain("job.succeeded");
      } finally {
        await disk.unmount();
      }
    });

    it("a full work dir fails the attempt, retryable, and publishes no rung as ready", async () => {
      const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
      const job = await jobFor(clip, format);
      const disk = await mountSmallDisk(dirs.workDir, 256 * 1024);
      try {
        const events: JobEventBody[] = [];
        const failure = await transcodeOnce(job, events);
        expect(failure).toBeInstanceOf(Error);
        expect(
          (failure as { retryable?: boolean }).retryable,
          `${(failure as Error).name}: ${(failure as Error).message}`,
        ).toBe(true);
        expect((failure as Error).message).toMatch(/No space left on device|ENOSPC/);
        const types = events.map((e) => e.type);
        expect(types).not.toContain("variant.failed");
        expect(types).not.toContain("job.succeeded");
      } finally {
        await disk.unmount();
      }
    });
  },
);
