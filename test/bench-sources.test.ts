import { execFile } from "node:child_process";
import { mkdtemp, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { generateSource, parseSourceNames } from "../bench/support/sources.ts";
import { fixturesDir } from "./support/media-fixtures.ts";

const run = promisify(execFile);

// The benchmarks (npm run bench, bench:latency) are too long for npm test; the sources they encode
// are checked here at a size that takes a second to make.
const clip = { seconds: 1, width: 320, height: 180 };

async function streamsOf(file: string): Promise<{ codec_name: string; width?: number; height?: number }[]> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_streams", "-of", "json", file]);
  return JSON.parse(stdout).streams;
}

/** MD5 of the decoded video frames: equal for the same pictures, whatever the container says. */
async function videoMd5(file: string): Promise<string> {
  const { stdout } = await run("ffmpeg", ["-v", "error", "-i", file, "-map", "0:v", "-f", "md5", "-"]);
  return stdout.trim();
}

describe("the benchmarks' generated sources (bench/support/sources.ts)", () => {
  it("writes testsrc2 and the camera-like source as H.264 + AAC; the camera's grain barely compresses and repeats run to run", async () => {
    const dir = await mkdtemp(path.join(fixturesDir(), "bench-sources-"));
    const testsrc2 = await generateSource(dir, { source: "testsrc2", ...clip });
    const camera = await generateSource(dir, { source: "camera", ...clip });
    for (const file of [testsrc2, camera]) {
      expect(await streamsOf(file)).toEqual([
        expect.objectContaining({ codec_name: "h264", width: 320, height: 180 }),
        expect.objectContaining({ codec_name: "aac" }),
      ]);
    }
    // Grain new in every frame costs x264 bits at any quality; testsrc2's still background does not.
    expect((await stat(camera)).size).toBeGreaterThan(3 * (await stat(testsrc2)).size);
    // The same grain and pan on every run: two runs of the bench encode the same pictures.
    const again = await generateSource(await mkdtemp(path.join(fixturesDir(), "bench-sources-")), {
      source: "camera",
      ...clip,
    });
    expect(await videoMd5(again)).toBe(await videoMd5(camera));
    expect(await videoMd5(camera)).not.toBe(await videoMd5(testsrc2));
  });

  it("--sources takes known names in the order given and refuses others", () => {
    expect(parseSourceNames("camera, testsrc2")).toEqual(["camera", "testsrc2"]);
    expect(() => parseSourceNames("testsrc2,webcam")).toThrow(/Unknown source webcam; known: testsrc2, camera/);
    expect(() => parseSourceNames(",")).toThrow(/names none/);
  });
});
