import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { ADMIN_AUTH, TEST_ADMIN_KEY } from "./support/auth.ts";
import { graphql, operationText } from "./support/graphql.ts";
import { makeClip, makeTone } from "./support/media-fixtures.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { waitFor } from "./support/wait-for.ts";

const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));
const ADD = graphql(`
  mutation($input: AddAudioTrackInput!) {
    addAudioTrack(input: $input) { __typename ... on AddAudioTrackSuccess { audioTrack { id } } }
  }`);
const VIDEO = graphql(`query($id: ID!) { video(id: $id) { playbackUrl dashUrl audioTracks { name status } } }`);

/** hls.js plays `master` muted and logs the audio fragments it buffers (their URLs) and its errors. */
const page = (master: string) => `<!doctype html><video muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
window.audioFragments = [];
window.hlsErrors = [];
const video = document.querySelector("video");
const hls = new Hls({ debug: false });
window.hls = hls;
hls.on(Hls.Events.FRAG_BUFFERED, (_, d) => { if (d.frag.type === "audio") window.audioFragments.push(d.frag.url); });
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

interface PlayerState {
  tracks: { name: string; lang: string | undefined; default: boolean }[];
  selected: number;
  audioFragments: string[];
  errors: { details: string; fatal: boolean }[];
  time: number;
}

describe("alternate audio tracks in a player (Chromium + hls.js)", () => {
  let t: TestApp;
  let browser: Browser;
  let videoId: string;
  beforeAll(async () => {
    await buildConsole();
    t = await startTestApp();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("a SIGNED fMP4 video: hls.js lists the default track first, plays it, and switches to the video's own audio", async () => {
    const clip = await makeClip({ width: 160, height: 90, seconds: 6, audio: true });
    const video = await createUpload(t, "dubbed", { segmentFormat: "FMP4", playbackPolicy: "SIGNED" });
    const final = finalState(t, video.id);
    expect((await fetch(`${t.url}${video.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    expect((await final).status).toBe("READY");
    videoId = video.id;
    const form = new FormData();
    const input = { videoId: video.id, language: "de", name: "Deutsch", default: true, file: null };
    form.append("operations", JSON.stringify({ query: operationText(ADD), variables: { input } }));
    form.append("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.append("0", new Blob([await readFile(await makeTone(6, 660, "mp3"))]), "de.mp3");
    const added = await (await fetch(`${t.url}/graphql`, { method: "POST", body: form, headers: ADMIN_AUTH })).json();
    expect(added.data.addAudioTrack.__typename).toBe("AddAudioTrackSuccess");
    await waitFor(
      "the track to be READY",
      async () => (await t.gql(VIDEO, { id: video.id })).data.video!.audioTracks,
      (tracks) => tracks[0]?.status === "READY",
    );
    const { playbackUrl, dashUrl } = (await t.gql(VIDEO, { id: video.id })).data.video!;
    // The DASH MPD over the same segments lists the track as an audio set of its own, the default's role main.
    const mpd = await (await fetch(new URL(dashUrl!, t.url))).text();
    const audioSets = mpd.split("<AdaptationSet").filter((set) => set.includes('contentType="audio"'));
    expect(audioSets).toHaveLength(2);
    const dubbed = audioSets.find((set) => set.includes('lang="de"'))!;
    expect(dubbed).toContain("<Label>Deutsch</Label>");
    expect(dubbed).toContain('value="main"');
    // Its own segments, beside the master, each with the session token.
    expect(dubbed).toMatch(/<BaseURL>\.\.\/audio\/[0-9a-f-]+\/hls\/track\/<\/BaseURL>/);
    expect(dubbed).toMatch(/<SegmentURL media="seg_00000\.m4s\?token=[^"]+"\/>/);

    const { url, server } = await servePage(page(new URL(playbackUrl!, t.url).href));
    const tab = await browser.newPage();
    const state = () =>
      tab.evaluate((): PlayerState => {
        const w = window as unknown as {
          hls: { audioTracks: { name: string; lang?: string; default: boolean }[]; audioTrack: number };
          audioFragments: string[];
          hlsErrors: { details: string; fatal: boolean }[];
        };
        return {
          tracks: w.hls.audioTracks.map((a) => ({ name: a.name, lang: a.lang, default: a.default })),
          selected: w.hls.audioTrack,
          audioFragments: [...w.audioFragments],
          errors: w.hlsErrors,
          time: document.querySelector("video")!.currentTime,
        };
      });
    try {
      await tab.goto(url);
      await tab.waitForFunction(() => (document.querySelector("video")?.currentTime ?? 0) >= 2, null, {
        timeout: 30_000,
      });
      const first = await state();
      expect(first.errors.filter((e) => e.fatal)).toEqual([]);
      expect(first.tracks).toEqual([
        { name: "default", lang: undefined, default: false },
        { name: "Deutsch", lang: "de", default: true },
      ]);
      expect(first.selected).toBe(1);
      // The track's own segments, with the token, are what it buffered.
      expect(first.audioFragments.length).toBeGreaterThan(0);
      for (const fragment of first.audioFragments)
        expect(fragment).toMatch(/\/audio\/[0-9a-f-]+\/hls\/track\/seg_\d+\.m4s\?token=/);

      // The viewer picks the video's own audio: its rung's segments follow, and playback goes on.
      const before = first.audioFragments.length;
      await tab.evaluate(() => {
        (window as unknown as { hls: { audioTrack: number } }).hls.audioTrack = 0;
      });
      const switched = await waitFor(
        "the ladder's audio to be buffered",
        state,
        (s) => s.audioFragments.slice(before).some((f) => /\/hls\/audio\/seg_\d+\.m4s/.test(f)),
        30_000,
      );
      expect(switched.selected).toBe(0);
      await tab.waitForFunction(() => (document.querySelector("video")?.currentTime ?? 0) >= 4, null, {
        timeout: 30_000,
      });
      expect((await state()).errors.filter((e) => e.fatal)).toEqual([]);
    } finally {
      await tab.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("the console's video page lists the tracks, adds one from a file and removes it; its player offers the audio", async () => {
    const ctx = await browser.newContext();
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    const tab = await ctx.newPage();
    tab.on("dialog", (dialog) => void dialog.accept());
    try {
      await tab.goto(`${t.url}/`);
      await tab.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
      await tab.getByRole("button", { name: "Sign in" }).click();
      await tab.getByRole("heading", { name: "Videos" }).waitFor();
      await tab.goto(`${t.url}/videos/${videoId}`);
      const list = tab.getByRole("list", { name: "Audio tracks" });
      await list.getByText("Deutsch").waitFor();
      expect(await list.getByTestId("default-audio-track").count()).toBe(1);
      // hls.js found the video's own audio and the track: the player offers both.
      const audio = tab.getByRole("combobox", { name: "Audio" });
      await audio.waitFor({ timeout: 30_000 });
      expect(await audio.locator("option").allTextContents()).toEqual(["Original", "Deutsch (de)"]);

      const form = tab.getByRole("form", { name: "Add an audio track" });
      await form.getByLabel("Audio file (MP3, AAC, WAV, FLAC, Ogg, M4A…)").setInputFiles(await makeTone(2, 550, "wav"));
      await form.getByLabel("Track name (as players list it)").fill("Commentary");
      await form.getByLabel("Language (BCP-47, e.g. en, de-CH)").fill("en");
      await form.getByRole("button", { name: "Add audio track" }).click();
      await list.locator('[data-status="READY"]', { hasText: "Commentary" }).waitFor({ timeout: 30_000 });
      await tab.getByRole("button", { name: "Remove audio track Commentary" }).click();
      await list.getByText("Commentary").waitFor({ state: "detached" });
      const tracks = (await t.gql(VIDEO, { id: videoId })).data.video!.audioTracks;
      expect(tracks.map((track) => track.name)).toEqual(["Deutsch"]);
    } finally {
      await ctx.close();
    }
  });
});
