import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));
const ADD = graphql(`
  mutation($input: AddCaptionInput!) {
    addCaption(input: $input) { __typename ... on AddCaptionSuccess { caption { id } } }
  }`);
const CAPTION_URL = graphql(`query($id: ID!) { video(id: $id) { captions { url } } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { playbackUrl variants { kind playlistUrl } } }`);
// Two cues, apart from each other and from the start: an offset of a second or more shows.
const CUES = "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\none\n\n00:00:04.000 --> 00:00:06.000\ntwo\n";
const CUE_TIMES: [number, number][] = [
  [1, 3],
  [4, 6],
];

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

  it.each(["TS", "FMP4"] as const)(
    "%s segments: hls.js lists the subtitle tracks and shows each cue when the video reaches its time",
    async (segmentFormat) => {
      const clip = await makeClip({ width: 320, height: 180, seconds: 8, audio: true });
      const { id, uploadUrl } = await createUpload(t, `captioned ${segmentFormat}`, { segmentFormat });
      const final = finalState(t, id);
      expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
      expect((await final).status).toBe("READY");
      for (const [language, name, isDefault] of [
        ["en", "English", true],
        ["de", "Deutsch (SDH)", false],
      ] as const) {
        const input = { videoId: id, language, name, text: CUES, default: isDefault, hearingImpaired: !isDefault };
        expect((await t.gql(ADD, { input })).data.addCaption.__typename).toBe("AddCaptionSuccess");
      }
      const { playbackUrl, variants } = (await t.gql(VIDEO, { id })).data.video!;

      const { url, server } = await servePage(page(new URL(playbackUrl!, t.url).href));
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
            // Where the video's first frame sits on the element's timeline (hls.js may start it a little
            // after 0): the start of what is buffered, where audio and video both are. Not the first frame
            // presented: a busy compositor may skip it.
            firstFrameTime: document.querySelector("video")!.buffered.start(0),
            cues: [...(document.querySelector("video")?.textTracks ?? [])]
              .filter((track) => track.label === "English")
              .flatMap((track) => [...(track.cues ?? [])] as VTTCue[])
              .map((cue) => ({ text: cue.text, start: cue.startTime, end: cue.endTime })),
          };
        });
        expect(seen.errors.filter((e) => e.fatal)).toEqual([]);
        expect(seen.tracks).toEqual([
          { name: "English", lang: "en", default: true },
          { name: "Deutsch (SDH)", lang: "de", default: false },
        ]);
        expect(seen.selected).toBe(0);

        // While it played, the default track showed "one", then nothing, then "two", never before its time.
        // How late a change is seen depends on the host's load (Chromium checks cues as it updates
        // currentTime, about every 250 ms, and a starved renderer reads a later time): where each cue
        // sits is checked below, and what is shown at a given time by seeking, not by the played log.
        const english = seen.cueLog.filter((c) => c.label === "English");
        const shown = (text: string) => english.findIndex((c) => c.active.includes(text));
        const gone = (text: string) => english.findIndex((c, i) => i > shown(text) && !c.active.includes(text));
        const log = JSON.stringify(english);
        expect(shown("one"), log).toBeGreaterThanOrEqual(0);
        expect(gone("one"), log).toBeGreaterThan(shown("one"));
        expect(shown("two"), log).toBeGreaterThanOrEqual(gone("one"));
        expect(english[shown("one")]!.time, log).toBeGreaterThanOrEqual(1 - 0.05);
        expect(english[gone("one")]!.time, log).toBeGreaterThanOrEqual(3 - 0.05);
        expect(english[shown("two")]!.time, log).toBeGreaterThanOrEqual(4 - 0.05);
        // Where hls.js put the cues: each within one frame (25 fps) of its time in the file, counted from the
        // video's first frame.
        const frame = 1 / 25;
        const offset = seen.firstFrameTime;
        const placed = JSON.stringify({ offset, cues: seen.cues });
        expect(seen.cues.map((c) => c.text)).toEqual(["one", "two"]);
        for (const [i, [start, end]] of CUE_TIMES.entries()) {
          expect(Math.abs(seen.cues[i]!.start - offset - start), placed).toBeLessThan(frame);
          expect(Math.abs(seen.cues[i]!.end - offset - end), placed).toBeLessThan(frame);
        }

        // Paused at a time, the default track shows what the file says is on at that time (counted from the
        // video's first frame): a cue a second or more off shows here whatever the load.
        for (const [at, expected] of [
          [0.5, []],
          [2, ["one"]],
          [3.5, []],
          [5, ["two"]],
          [6.3, []],
        ] as [number, string[]][]) {
          const active = await tab.evaluate(async (time) => {
            const video = document.querySelector("video")!;
            video.pause();
            const seeked = new Promise((resolve) => video.addEventListener("seeked", resolve, { once: true }));
            video.currentTime = time;
            await seeked;
            const english = [...video.textTracks].find((track) => track.label === "English")!;
            return [...(english.activeCues ?? [])].map((cue) => (cue as VTTCue).text);
          }, offset + at);
          expect(active, `the cues on at ${at} s`).toEqual(expected);
        }
      } finally {
        await tab.close();
        await new Promise((resolve) => server.close(resolve));
      }

      // The captions' X-TIMESTAMP-MAP says where the video's time 0 is in its segments: the first frame's PTS, measured.
      const rung = variants.find((v) => v.kind === "VIDEO")!.playlistUrl!;
      const rungUrl = new URL(rung, t.url);
      const rungText = await (await fetch(rungUrl)).text();
      const firstSegment = rungText.split("\n").find((l) => /\.(ts|m4s)$/.test(l))!;
      const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(rungText)?.[1];
      const bytes = async (uri: string) => Buffer.from(await (await fetch(new URL(uri, rungUrl))).arrayBuffer());
      const segmentFile = path.join(t.dataDir, `first-segment-${segmentFormat}`);
      await writeFile(segmentFile, Buffer.concat([...(init ? [await bytes(init)] : []), await bytes(firstSegment)]));
      const { stdout } = await promisify(execFile)("ffprobe", [
        ...["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-read_intervals", "%+#1"],
        ...["-of", "csv=p=0", segmentFile],
      ]);
      const vtt = await (
        await fetch(new URL((await t.gql(CAPTION_URL, { id })).data.video!.captions[0]!.url, t.url))
      ).text();
      const map = /^X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:00:00:00\.000$/m.exec(vtt);
      expect(Math.round(Number.parseFloat(stdout) * 90_000)).toBe(Number(map?.[1]));
    },
  );
});
