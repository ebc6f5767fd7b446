import { cp, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/console.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { jobDirsPerTest, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";

const JOB_ID = "7d7a3c52-58a4-4c1e-9a43-0f8f5f1b2c0a";
const VIDEO_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4a";
const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));

const dirs = jobDirsPerTest("playback");

/** The page: hls.js plays `master.m3u8` muted and records its error events (fatal or not). */
const PAGE = `<!doctype html><video muted autoplay playsinline></video><script src="/hls.js"></script><script>
window.hlsEvents = [];
const video = document.querySelector("video");
const hls = new Hls({ debug: false });
hls.on(Hls.Events.ERROR, (_, data) =>
  window.hlsEvents.push({ details: data.details, fatal: data.fatal, reason: data.reason }));
hls.loadSource("/hls/master.m3u8");
hls.attachMedia(video);
video.play().catch(() => {});
</script>`;

/** Serves the page, hls.js, and `hlsDir` under /hls/ on 127.0.0.1. */
async function servePlayer(hlsDir: string): Promise<{ url: string; server: Server }> {
  const types: Record<string, string> = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    try {
      if (url.pathname === "/") return res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      if (url.pathname === "/hls.js") return res.writeHead(200).end(await readFile(HLS_JS));
      const file = path.join(hlsDir, path.normalize(url.pathname.replace(/^\/hls\//, "")));
      if (!url.pathname.startsWith("/hls/") || !file.startsWith(hlsDir)) return res.writeHead(404).end();
      res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
      res.end(await readFile(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

/** Plays `hlsDir` in Chromium until `seconds` of it played (or 20 s passed); what hls.js said and how far it got. */
async function play(browser: Browser, hlsDir: string, seconds: number) {
  const { url, server } = await servePlayer(hlsDir);
  const page = await browser.newPage();
  try {
    await page.goto(url);
    await page
      .waitForFunction((s) => (document.querySelector("video")?.currentTime ?? 0) >= s, seconds, { timeout: 20_000 })
      .catch(() => {});
    return await page.evaluate(() => {
      const video = document.querySelector("video")!;
      return {
        currentTime: video.currentTime,
        bufferedStart: video.buffered.length > 0 ? video.buffered.start(0) : null,
        events: (window as unknown as { hlsEvents: { details: string; fatal: boolean; reason?: string }[] }).hlsEvents,
      };
    });
  } finally {
    await page.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("a player plays the ladder (Chromium + hls.js)", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it.each(["TS", "FMP4"] as const)(
    `plays from the first publish (the master and one short segment per rung), then \
the whole video (%s)`,
    async (segmentFormat) => {
      const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
      const staged = await stageTranscodeJob(dirs.dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 4);
      const job = { ...staged, options: { ...staged.options, segmentFormat } };
      const hlsDir = path.join(dirs.dataDir, job.outputPrefix, "hls");
      const firstPublish = path.join(dirs.root, "first-publish");
      await transcode(job, {
        storage: createLocalWorkerStorage(dirs.dataDir),
        signal: new AbortController().signal,
        workDir: dirs.workDir,
        progressIntervalMs: 200,
        // The publisher waits for this: what storage holds now is exactly what `playable` announced.
        emit: async (e: JobEventBody) => {
          if (e.type === "video.playable") await cp(hlsDir, firstPublish, { recursive: true });
        },
      });
      const firstAudio = await readFile(path.join(firstPublish, "audio", "index.m3u8"), "utf8");
      expect(firstAudio).toContain("#EXT-X-TARGETDURATION:4");
      expect(firstAudio).not.toContain("#EXT-X-ENDLIST");

      // The first publish holds 1 s per rung: the player starts and plays it.
      const early = await play(browser, firstPublish, 0.5);
      expect(early.events.filter((e) => e.fatal)).toEqual([]);
      expect(early.currentTime).toBeGreaterThanOrEqual(0.5);

      const whole = await play(browser, hlsDir, 3);
      expect(whole.events.filter((e) => e.fatal)).toEqual([]);
      expect(whole.currentTime).toBeGreaterThanOrEqual(3);

      // hls.js puts time 0 at the first video frame's decode time; x264's B-frames show it two frames
      // (80 ms at 25 fps) later, a hole hls.js may seek over at start (`bufferSeekOverHole`), with or
      // without the timestamps' 10 s lead. Nothing longer: audio and video start together.
      for (const played of [early, whole]) expect(played.bufferedStart).toBeLessThan(0.1);
      const holes = [...early.events, ...whole.events].filter((e) => e.details === "bufferSeekOverHole");
      for (const hole of holes) expect(hole.reason).toMatch(/seeking from 0 to 0\.[01]\d*$/);
    },
  );
});
