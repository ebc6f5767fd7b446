import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderImage } from "../src/thumbnails/render-image.ts";
import { alivePids, processesWithCwd } from "./support/process-scan.ts";

const run = promisify(execFile);

describe("renderImage", () => {
  let dir: string;
  let segment: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "videograph-render-image-test-"));
    const file = path.join(dir, "segment.ts");
    await run("ffmpeg", [
      ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mpegts", file],
    ]);
    segment = await readFile(file);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("kills ffmpeg at once when its signal aborts, even while a segment read is stalled", async () => {
    const work = await mkdtemp(path.join(dir, "abort-"));
    let unstall = () => {};
    const stalled = new Promise<void>((resolve) => (unstall = resolve));
    // Half a segment, then a read that does not come back (a stalled bucket): ffmpeg waits for more.
    async function* slowSegment() {
      yield segment.subarray(0, segment.length >> 1);
      await stalled;
    }
    const controller = new AbortController();
    const rendering = renderImage({
      request: { kind: "animated", format: "gif", startMs: 0, endMs: 3000, width: 160 },
      segments: [slowSegment],
      format: "mpegts",
      offsetSeconds: 0,
      outFile: path.join(work, "image.gif"),
      signal: controller.signal,
    });
    rendering.catch(() => {});
    let pids: number[] = [];
    for (let i = 0; i < 500 && pids.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      pids = processesWithCwd(work);
    }
    expect(pids, "ffmpeg started").toHaveLength(1);
    controller.abort(new Error("the client went away"));
    const t0 = Date.now();
    const outcome = await Promise.race([
      rendering.then(
        () => "made",
        (err: Error) => err.message,
      ),
      new Promise((r) => setTimeout(() => r("still running after 2 s"), 2000)),
    ]);
    expect(outcome).toBe("the client went away");
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(alivePids(pids), "ffmpeg after the abort").toEqual([]);
    unstall();
  });
});
