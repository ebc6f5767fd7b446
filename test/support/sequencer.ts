import path from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The files that take longest, longest first, from a full run on 2 cores, four files at a time
 * (2026-11-23, and `live-stream` 2026-11-26; vitest's JSON reporter: each file's endTime - startTime).
 * `live-stream`'s split (2026-11-28) is placed by its parts' share of its time, not measured yet:
 * the broadcast and its watch page, then SRT and the reconnects.
 * Refresh it when a file joins them.
 */
const LONGEST_FIRST = [
  "test/live-broadcast.test.ts",
  "test/worker/chunks.test.ts",
  "test/worker/render-manim.test.ts",
  "test/live-srt.test.ts",
  "test/live-reconnects.test.ts",
  "test/render-manim-api.test.ts",
  "test/console-e2e.test.ts",
  "test/storyboard-thumbnails.test.ts",
  "test/worker/one-run-per-delivery.test.ts",
  "test/worker/resume.test.ts",
  "test/worker/bandwidth.test.ts",
  "test/worker/split-transcode.test.ts",
  "test/audio-only.test.ts",
  "test/embedded-start.test.ts",
  "test/webhooks.test.ts",
  "test/static-renditions.test.ts",
  "test/multi-instance.test.ts",
  "test/resume.test.ts",
  "test/multi-instance-pubsub.test.ts",
  "test/subscription-restart.test.ts",
  "test/storage-outage.test.ts",
  "test/fmp4-segments.test.ts",
  "test/pubsub-transport.test.ts",
  "test/hostile-media.test.ts",
  "test/postgres-listen-reconnect.test.ts",
  "test/worker/render-composition.test.ts",
  "test/render-composition-api.test.ts",
  "test/instant-clip.test.ts",
  "test/docs-examples.test.ts",
  "test/trace-across-programs.test.ts",
  "test/cli-help.test.ts",
  "test/event-claims.test.ts",
];

/**
 * Starts the longest files first, so that no long file starts last and runs on alone while the
 * other worker sits idle. Vitest orders by the durations of the previous run when it has them for
 * every file; a fresh clone (CI) has none, and vitest would go by file size, which puts several long
 * files (the upload-to-hls ones are the smallest) at the end.
 */
export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const relative = (file: TestSpecification) => path.relative(this.ctx.config.root, file.moduleId);
    const timed = (file: TestSpecification) =>
      this.ctx.cache.getFileTestResults(`${file.project.name}:${relative(file)}`) !== undefined;
    if (sorted.every(timed)) return sorted;
    const rank = (file: TestSpecification) => {
      const at = LONGEST_FIRST.indexOf(relative(file));
      return at < 0 ? LONGEST_FIRST.length : at;
    };
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
