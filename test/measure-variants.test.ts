import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { measureVariants } from "../src/videos/measure-variants.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { uploadAndWait } from "./support/uploads.ts";

const run = promisify(execFile);

/**
 * A video made before workers reported what its rungs carry, as the API has it: its variants
 * without measured figures, its master stating each variant's bound and no AVERAGE-BANDWIDTH.
 */
async function asBeforeTheFigures(t: TestApp, videoId: string, masterFile: string): Promise<void> {
  const variants = await t.app.services.db.variant.findMany({ where: { videoId } });
  await t.app.services.db.variant.updateMany({ where: { videoId }, data: { peakBitRate: null, averageBitRate: null } });
  const lines = (await readFile(masterFile, "utf8")).split("\n");
  const old = lines.map((line, i) => {
    if (!line.startsWith("#EXT-X-STREAM-INF:")) return line;
    const bound = variants.find((v) => lines[i + 1] === `${v.name}/index.m3u8`)!.bandwidth;
    return line
      .replace(/AVERAGE-BANDWIDTH=\d+,/, "")
      .replace(/^#EXT-X-STREAM-INF:BANDWIDTH=\d+/, `#EXT-X-STREAM-INF:BANDWIDTH=${bound}`);
  });
  await writeFile(masterFile, old.join("\n"));
}

describe("npm run measure:variants: videos made before the measured figures get them from storage", () => {
  let t: TestApp;
  let videoId: string;
  let masterFile: string;
  /** What the worker measured and wrote when the video was made. */
  let measured: { name: string; peakBitRate: number | null; averageBitRate: number | null }[];
  let measuredMaster: string;

  beforeAll(async () => {
    t = await startTestApp();
    const clip = await makeClip({ width: 640, height: 360, seconds: 5, audio: true });
    const video = await uploadAndWait(t, new Uint8Array(await readFile(clip)), "made before the figures");
    expect(video.status).toBe("READY");
    videoId = video.id;
    masterFile = path.join(t.dataDir, "videos", videoId, "hls", "master.m3u8");
    const select = { name: true, peakBitRate: true, averageBitRate: true } as const;
    measured = await t.app.services.db.variant.findMany({ where: { videoId }, select, orderBy: { name: "asc" } });
    measuredMaster = await readFile(masterFile, "utf8");
    await asBeforeTheFigures(t, videoId, masterFile);
  });
  afterAll(async () => {
    await t?.stop();
  });

  const figures = () =>
    t.app.services.db.variant.findMany({
      where: { videoId },
      select: { name: true, peakBitRate: true, averageBitRate: true },
      orderBy: { name: "asc" },
    });

  it("a dry run says what it would measure and writes nothing", async () => {
    const before = await readFile(masterFile, "utf8");
    const outcome = await measureVariants(t.app.services.db, t.app.services.storage, { dryRun: true });
    expect(outcome).toEqual([
      {
        videoId,
        measured: expect.arrayContaining(["360p", "240p", "144p", "audio"]),
        unmeasured: [],
        masterUpdated: true,
      },
    ]);
    expect((await figures()).every((v) => v.averageBitRate === null)).toBe(true);
    expect(await readFile(masterFile, "utf8")).toBe(before);
  });

  it("measures each variant and its master as the worker did, from what storage holds; then has nothing left", async () => {
    // The operator's command, against the app's database and storage.
    const { stdout } = await run(
      process.execPath,
      ["--import", "./src/shared/env-file.ts", "scripts/measure-variants.ts"],
      { env: { ...process.env, DATABASE_URL: t.database.url, DATA_DIR: t.dataDir, STORAGE: "local" }, timeout: 60_000 },
    );
    expect(stdout).toMatch(new RegExp(`^${videoId}: measured [a-z0-9, ]+; master updated$`, "m"));
    expect(stdout).toContain("measured 4 variants of 1 videos; 1 masters updated; 0 variants could not be measured");
    expect(await figures()).toEqual(measured);
    expect(measured.every((v) => v.averageBitRate! > 0)).toBe(true);
    expect(await readFile(masterFile, "utf8")).toBe(measuredMaster);
    expect(await measureVariants(t.app.services.db, t.app.services.storage)).toEqual([]);
  });

  it("a rung with a segment missing from storage stays unmeasured", async () => {
    await t.app.services.db.variant.updateMany({
      where: { videoId, name: "240p" },
      data: { peakBitRate: null, averageBitRate: null },
    });
    const playlist = await readFile(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8");
    const segment = playlist.split("\n").find((line) => line.endsWith(".ts"))!;
    await rm(path.join(t.dataDir, "videos", videoId, "hls", "240p", segment));
    const outcome = await measureVariants(t.app.services.db, t.app.services.storage);
    expect(outcome).toEqual([{ videoId, measured: [], unmeasured: ["240p"], masterUpdated: false }]);
    expect((await figures()).find((v) => v.name === "240p")).toEqual({
      name: "240p",
      peakBitRate: null,
      averageBitRate: null,
    });
  });
});
