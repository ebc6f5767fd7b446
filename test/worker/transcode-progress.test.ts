import { describe, expect, it } from "vitest";
import type { EncoderStatus } from "../../render-worker/media/encode-ladder.ts";
import { type TranscodeFacts, transcodeProgress } from "../../render-worker/progress/job-progress.ts";

const rung = (name: string, publishedSeconds: number, error?: string) => ({
  name,
  progress: publishedSeconds / 8,
  segmentCount: Math.round(publishedSeconds / 2),
  publishedSeconds,
  ...(error ? { error } : {}),
});

function facts(rungs: ReturnType<typeof rung>[], encoder: EncoderStatus | null = null): TranscodeFacts {
  return { durationSeconds: 8, sourceFps: 30, encoder: () => encoder, variants: () => rungs };
}

describe("a transcode's job.progress figures", () => {
  it("before ffmpeg's first status line: speed, fps and ETA from what the run published since it started", () => {
    const body = transcodeProgress(facts([rung("720p", 4), rung("360p", 2)]), { at: 0, seconds: 0 }, 1000);
    // The slowest rung published 2 s of media in 1 s of wall time.
    expect(body).toMatchObject({ progress: 0.25, speed: 2, fps: 60, etaSeconds: 3 });
  });

  it("counts from what the rungs held at the start (a resumed run's kept segments); nothing new: no figures", () => {
    const kept = { at: 0, seconds: 4 };
    expect(transcodeProgress(facts([rung("720p", 4)]), kept, 2000)).toMatchObject({
      progress: 0.5,
      speed: null,
      fps: null,
      etaSeconds: null,
    });
    expect(transcodeProgress(facts([rung("720p", 6)]), kept, 2000)).toMatchObject({
      progress: 0.75,
      speed: 1,
      fps: 30,
      etaSeconds: 2,
    });
  });

  it("leaves out a rung that storage refused: it publishes no more", () => {
    const body = transcodeProgress(facts([rung("720p", 4), rung("360p", 0, "refused")]), { at: 0, seconds: 0 }, 2000);
    expect(body).toMatchObject({ progress: 0.5, speed: 2, etaSeconds: 2 });
  });

  it("takes ffmpeg's own figures once it prints them", () => {
    const encoder: EncoderStatus = { outTimeSeconds: 6, fps: 75, startedAt: 0, fromSeconds: 0 };
    const body = transcodeProgress(facts([rung("720p", 2)], encoder), { at: 0, seconds: 0 }, 2000);
    expect(body).toMatchObject({ progress: 0.75, speed: 3, fps: 75, etaSeconds: 1 });
  });
});
