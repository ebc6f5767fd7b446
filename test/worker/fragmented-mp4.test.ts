import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitFragmentedMp4 } from "../../render-worker/media/fragmented-mp4.ts";
import { fixturesDir, runFfmpeg } from "../support/media-fixtures.ts";

const run = promisify(execFile);

describe("splitFragmentedMp4 (real ffmpeg output)", () => {
  let dir: string;
  let fragmented: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(fixturesDir(), "fmp4-"));
    const lavfi = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1", "-c:v", "libx264"];
    const file = path.join(dir, "segment.mp4");
    await runFfmpeg([...lavfi, "-movflags", "empty_moov+default_base_moof", file]);
    fragmented = await readFile(file);
    await runFfmpeg([...lavfi, path.join(dir, "plain.mp4")]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("splits a segment file into its init (ftyp + moov) and its fragment, which decode joined", async () => {
    const { init, media } = splitFragmentedMp4(fragmented);
    expect(init.subarray(4, 8).toString("latin1")).toBe("ftyp");
    expect(media.subarray(4, 8).toString("latin1")).toBe("moof");
    // The trailing mfra index is left out.
    expect(init.length + media.length).toBeLessThan(fragmented.length);
    const joined = path.join(dir, "joined.mp4");
    await writeFile(joined, Buffer.concat([init, media]));
    const { stdout } = await run("ffprobe", [
      ...["-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", joined],
    ]);
    expect(stdout.trim()).toBe("25");
  });

  it("refuses a file cut short, one with bytes after its boxes, and an MP4 that is not fragmented", async () => {
    expect(() => splitFragmentedMp4(fragmented.subarray(0, fragmented.length - 1))).toThrow(/runs past the end/);
    expect(() => splitFragmentedMp4(Buffer.concat([fragmented, Buffer.from([0, 0, 0])]))).toThrow(/cut short/);
    expect(() => splitFragmentedMp4(Buffer.alloc(0))).toThrow(/ftyp and moov/);
    const plain = await readFile(path.join(dir, "plain.mp4"));
    expect(() => splitFragmentedMp4(plain)).toThrow(/not start with ftyp and moov|moof \+ mdat/);
  });
});
