import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MPEGTS_TIME_ZERO } from "../src/protocol/media-timeline.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { uploadAndWait } from "./support/upload-and-wait.ts";
import { makeClip } from "./worker/media-fixtures.ts";

const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));
const ADD = /* GraphQL */ `
  mutation($input: AddCaptionInput!) {
    addCaption(input: $input) { __typename ... on AddCaptionSuccess { caption { id } } }
  }`;
const VIDEO = /* GraphQL */ `
  query($id: ID!) { video(id: $id) { playbackUrl variants { kind playlistUrl } } }`;
// Two cues, apart from each other and from the start: an offset of a second or more shows.
const CUES = "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\none\n\n00:00:04.000 --> 00:00:06.000\ntwo\n";

/**
 * hls.js plays `master` muted; every change of a text track's active cues is logged with the
 * media time it happened at, as are the subtitle tracks hls.js found and its errors.
 */
const page = (master: string) => `<!doctype html><video muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
window.cueLog = [];
window.hlsErrors = [];
const video = document.querySelector("video");
video.textTracks.addEventListener("addtrack", (e) => {
  const track = e.track;
  track.addEventListener("cuechange", () => window.cueLog.push({
    time: video.currentTime, label: track.label, active: [...track.activeCues].map((c) => c.text),
  }));
});
const hls = new Hls({ debug: false });
window.hls = hls;
hls.on(Hls.Events.ERROR, (_, d) => window.hlsErrors.push({ details: d.details, fatal: d.fatal }));
hls.loadSource(${JSON.stringify(master)});
hls.attachMedia(video);
video.play().catch(() => {});
</script>`;

async function servePage(html: string): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    if (req.url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(html);
    if (req.url === "/hls.js") return res.writeHead(200).end(await readFile(HLS_JS));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

interface CueChange {
  time: number;
  label: string;
  active: string[];
}

describe("captions in a player (Chromium + hls.js)", () => {
  let t: TestApp;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestApp();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("hls.js lists the subtitle tracks and shows each cue when the video reaches its time", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 8, audio: true });
    const video = await uploadAndWait(t, await readFile(clip), "captioned");
    expect(video.status).toBe("READY");
    for (const [language, name, isDefault] of [
      ["en", "English", true],
      ["de", "Deutsch (SDH)", false],
    ] as const) {
      const input = { videoId: video.id, language, name, text: CUES, default: isDefault, hearingImpaired: !isDefault };
      expect((await t.gql(ADD, { input })).data.addCaption.__typename).toBe("AddCaptionSuccess");
    }
    const { playbackUrl, variants } = (await t.gql(VIDEO, { id: video.id })).data.video;

    // The captions' X-TIMESTAMP-MAP says the video's time 0 is MPEGTS_TIME_ZERO: so do the segments.
    const rung = variants.find((v: { kind: string }) => v.kind === "VIDEO").playlistUrl;
    const rungUrl = new URL(rung, t.url);
    const firstSegment = (await (await fetch(rungUrl)).text()).split("\n").find((l) => l.endsWith(".ts"))!;
    const segmentFile = path.join(t.dataDir, "first-segment.ts");
    await writeFile(segmentFile, Buffer.from(await (await fetch(new URL(firstSegment, rungUrl))).arrayBuffer()));
    const { stdout } = await promisify(execFile)("ffprobe", [
      ...["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts", "-read_intervals", "%+#1"],
      ...["-of", "csv=p=0", segmentFile],
    ]);
    expect(Number.parseInt(stdout, 10)).toBe(MPEGTS_TIME_ZERO);

    const { url, server } = await servePage(page(new URL(playbackUrl, t.url).href));
    const tab = await browser.newPage();
    try {
      await tab.goto(url);
      await tab.waitForFunction(() => (document.querySelector("video")?.currentTime ?? 0) >= 6.5, null, {
        timeout: 30_000,
      });
      const seen = await tab.evaluate(() => {
        const w = window as unknown as {
          hls: { subtitleTracks: { name: string; lang: string; default: boolean }[]; subtitleTrack: number };
          cueLog: CueChange[];
          hlsErrors: { details: string; fatal: boolean }[];
        };
        return {
          tracks: w.hls.subtitleTracks.map((s) => ({ name: s.name, lang: s.lang, default: s.default })),
          selected: w.hls.subtitleTrack,
          cueLog: w.cueLog,
          errors: w.hlsErrors,
        };
      });
      expect(seen.errors.filter((e) => e.fatal)).toEqual([]);
      expect(seen.tracks).toEqual([
        { name: "English", lang: "en", default: true },
        { name: "Deutsch (SDH)", lang: "de", default: false },
      ]);
      expect(seen.selected).toBe(0);

      // The default track shows "one" from 1 s to 3 s and "two" from 4 s to 6 s of the video, give or take
      // the browser's cue update interval (Chromium checks cues as it updates currentTime, about every 250 ms).
      const english = seen.cueLog.filter((c) => c.label === "English");
      const shown = (text: string) => english.findIndex((c) => c.active.includes(text));
      const gone = (text: string) => english.findIndex((c, i) => i > shown(text) && !c.active.includes(text));
      const near = (index: number, expected: number) => {
        const time = english[index]?.time;
        expect(time, `a cue change near ${expected} s in ${JSON.stringify(english)}`).toBeDefined();
        expect(time!).toBeGreaterThanOrEqual(expected - 0.05);
        expect(time!).toBeLessThan(expected + 0.4);
      };
      near(shown("one"), 1);
      near(gone("one"), 3);
      near(shown("two"), 4);
    } finally {
      await tab.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
