import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { renderImage } from "../src/thumbnails/render-image.ts";
import { recordingFfmpeg } from "./support/recording-ffmpeg.ts";

const run = promisify(execFile);

describe("the API's image maker", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "videograph-image-ffmpeg-path-"));
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs the ffmpeg FFMPEG_PATH names, as the worker does", async () => {
    const segmentFile = path.join(dir, "segment.ts");
    await run("ffmpeg", [
      ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mpegts", segmentFile],
    ]);
    const segment = await readFile(segmentFile);
    // Records each call, then runs the real ffmpeg (the image maker gives its tool no variables to read).
    const recorder = await recordingFfmpeg(dir);
    vi.stubEnv("FFMPEG_PATH", recorder.path);

    const outFile = path.join(dir, "thumbnail.jpg");
    await renderImage({
      request: { kind: "thumbnail", timeMs: 500, width: 160 },
      segments: [
        async function* () {
          yield segment;
        },
      ],
      format: "mpegts",
      offsetSeconds: 0.5,
      outFile,
    });

    expect((await stat(outFile)).size).toBeGreaterThan(0);
    const recorded = await recorder.calls();
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toContain("thumbnail.jpg");
  });
});
