import path from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The files that take longest, longest first, from a full run on 2 cores, four files at a time
 * (2026-11-28, session 50: each file's wall time from its first hook to its last, `FILE_CPU_DIR`'s
 * files.tsv). Refresh it when a file joins them: a long file missing here starts wherever vitest puts
 * it, and one that starts last runs on alone (testing.md, "Where the time goes").
 */
const LONGEST_FIRST = [
  "test/live-full-disk.test.ts",
  "test/live-deploy.test.ts",
  "test/live-one-takeover.test.ts",
  "test/console-e2e.test.ts",
  "test/console-library.test.ts",
  "test/render-manim-api.test.ts",
  "test/multi-instance.test.ts",
  "test/live-ending.test.ts",
  "test/graphql-hostile-arguments.test.ts",
  "test/resume.test.ts",
  "test/worker/one-run-per-delivery.test.ts",
  "test/worker/resume.test.ts",
  "test/worker/render-manim.test.ts",
  "test/webhooks.test.ts",
  "test/multi-instance-pubsub.test.ts",
  "test/docs-examples.test.ts",
  "test/embedded-start.test.ts",
  "test/migrations.test.ts",
  "test/worker/split-transcode.test.ts",
  "test/worker/chunks.test.ts",
  "test/ingest-events.test.ts",
  "test/console-video-features.test.ts",
  "test/media-filters.test.ts",
  "test/static-renditions.test.ts",
  "test/live-crash.test.ts",
  "test/audio-only.test.ts",
  "test/split-transcode-ingest.test.ts",
  "test/live-reconnects.test.ts",
  "test/live-broadcast.test.ts",
  "test/subscription-restart.test.ts",
  "test/storage-outage.test.ts",
  "test/postgres-listen-reconnect.test.ts",
  "test/worker/bandwidth.test.ts",
  "test/live-srt.test.ts",
  "test/worker/ffmpeg.test.ts",
  "test/exit-codes.test.ts",
  "test/split-transcode-default.test.ts",
  "test/split-transcode-cloud.test.ts",
  "test/pubsub-transport.test.ts",
  "test/worker/storage-waits.test.ts",
  "test/upload-to-hls-s3.test.ts",
  "test/live-takeover.test.ts",
  "test/analytics-playback.test.ts",
  "test/live-caps.test.ts",
  "test/event-claims.test.ts",
  "test/database-restart.test.ts",
  "test/worker/storyboard.test.ts",
  "test/worker/sandbox.test.ts",
  "test/fmp4-segments.test.ts",
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
