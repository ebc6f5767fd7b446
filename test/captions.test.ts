import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MEDIA_TIME_ZERO_90KHZ } from "../src/protocol/media-timeline.ts";
import { captionKey } from "../src/protocol/storage-layout.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH, tenantKeySecret } from "./support/auth.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { expectTypename, graphql, operationText, type VariablesOf } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const SIGNING_SECRET = "test-signing-secret-test-signing-secret-0123";
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const ADD = graphql(`
  mutation($input: AddCaptionInput!) {
    addCaption(input: $input) {
      __typename
      ... on AddCaptionSuccess {
        caption { id language name default autoselect forced hearingImpaired source cueCount url playlistUrl }
        video { id captions { id name default } }
      }
      ... on InvalidCaptionsError { message line }
      ... on ValidationError { message field }
      ... on NotFoundError { message id }
      ... on FileTooLargeError { message maxBytes }
    } }`);
const REMOVE = graphql(`
  mutation($id: ID!) {
    removeCaption(id: $id) {
      __typename
      ... on RemoveCaptionSuccess { removedCaptionId video { captions { id } } }
      ... on NotFoundError { id }
    } }`);
const UPDATE = graphql(`
  mutation($id: ID!, $input: UpdateCaptionInput!) {
    updateCaption(id: $id, input: $input) {
      __typename
      ... on UpdateCaptionSuccess { caption { id name language default } video { captions { name default } } }
      ... on ValidationError { message field }
      ... on NotFoundError { id }
    } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { status playbackUrl captions { id language name url playlistUrl } } }`);
const CAPTIONS = graphql(`query($id: ID!) { video(id: $id) { captions { name language default } } }`);

// A header, an identifier and settings, a NOTE, a line of no-break spaces that positions a cue, a one-digit hour.
const VTT =
  "WEBVTT - made by hand\nKind: captions\n\n1\n00:00.500 --> 00:01.500 align:start\nHello <i>there</i>\n\n" +
  "NOTE a note\n\n0:00:01.600 --> 0:00:01.900\n\u00A0\nBye\n";
// What a Windows editor writes: a BOM, CRLF, a <font> tag, an ASS override, cues out of order.
const SRT =
  '\uFEFF1\r\n00:00:01,000 --> 00:00:01,800\r\n<font color="#ff0">{\\an8}Zweite</font> Zeile\r\n\r\n' +
  "2\r\n00:00:00,250 --> 00:00:00,900\r\n[Musik]\r\n";

describe("captions through the public API", () => {
  let t: TestApp;
  let clip: Uint8Array<ArrayBuffer>;
  let keyB: string;
  const get = (p: string, init?: RequestInit) => fetch(p.startsWith("http") ? p : `${t.url}${p}`, init);
  const add = async (input: VariablesOf<typeof ADD>["input"], authorization?: string) =>
    (await t.gql(ADD, { input }, authorization)).data!.addCaption;
  /** `add`, expecting AddCaptionSuccess. */
  const added = async (input: VariablesOf<typeof ADD>["input"]) =>
    expectTypename(await add(input), "AddCaptionSuccess");

  async function createVideo(policy: "PUBLIC" | "SIGNED"): Promise<{ id: string; uploadUrl: string }> {
    return createUpload(t, policy, { playbackPolicy: policy });
  }
  async function uploadAndWait(video: { id: string; uploadUrl: string }): Promise<void> {
    const done = collectSubscription(t.wsClient(), EVENTS, { id: video.id }).done;
    expect((await get(video.uploadUrl, { method: "PUT", body: clip })).status).toBe(200);
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
  }
  async function readyVideo(policy: "PUBLIC" | "SIGNED"): Promise<string> {
    const video = await createVideo(policy);
    await uploadAndWait(video);
    return video.id;
  }
  /** The master playlist as a player gets it, and the URL it came from. */
  async function master(id: string): Promise<{ url: string; text: string }> {
    const playbackUrl = (await t.gql(VIDEO, { id })).data.video!.playbackUrl!;
    const res = await get(playbackUrl);
    expect(res.status).toBe(200);
    return { url: new URL(playbackUrl, t.url).href, text: await res.text() };
  }

  beforeAll(async () => {
    const threeMiB = String(3 * 1024 * 1024);
    t = await startTestApp({
      env: { SIGNING_SECRET, MULTIPART_MAX_BYTES: threeMiB, GRAPHQL_MAX_BODY_BYTES: threeMiB },
    });
    clip = new Uint8Array(await readFile(await makeClip({ width: 160, height: 90, seconds: 3, audio: true })));
    keyB = `Bearer ${await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b")}`;
  });
  afterAll(() => t?.stop());

  describe("on a READY public video", () => {
    let id: string;
    beforeAll(async () => {
      id = await readyVideo("PUBLIC");
    });

    it("adds WebVTT and SRT tracks; the master lists them as SUBTITLES renditions that play", async () => {
      const en = await added({ videoId: id, language: "EN-us", name: "English", text: VTT, default: true });
      expect(en.caption).toMatchObject({
        language: "en-US",
        name: "English",
        default: true,
        autoselect: true,
        forced: false,
        hearingImpaired: false,
        source: "UPLOADED",
        cueCount: 2,
      });
      const de = await added({ videoId: id, language: "de", name: "Deutsch (SDH)", text: SRT, hearingImpaired: true });
      expect(de.video.captions.map((c) => c.name)).toEqual(["English", "Deutsch (SDH)"]);

      // Both files are WebVTT aligned with the segments' timestamps; the SRT one converted.
      const enFile = await get(en.caption.url);
      expect(enFile.headers.get("content-type")).toBe("text/vtt; charset=utf-8");
      expect(await enFile.text()).toBe(
        `WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:${MEDIA_TIME_ZERO_90KHZ.TS},LOCAL:00:00:00.000\n\n` +
          "1\n00:00:00.500 --> 00:00:01.500 align:start\nHello <i>there</i>\n\n" +
          "00:00:01.600 --> 00:00:01.900\n\u00A0\nBye\n",
      );
      expect(await (await get(de.caption.url)).text()).toBe(
        `WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:${MEDIA_TIME_ZERO_90KHZ.TS},LOCAL:00:00:00.000\n\n` +
          "00:00:00.250 --> 00:00:00.900\n[Musik]\n\n00:00:01.000 --> 00:00:01.800\nZweite Zeile\n",
      );

      const { url, text } = await master(id);
      const media = text.split("\n").filter((l) => l.startsWith("#EXT-X-MEDIA:TYPE=SUBTITLES"));
      expect(media).toEqual([
        `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en-US",DEFAULT=YES,AUTOSELECT=YES,` +
          `FORCED=NO,URI="../captions/${en.caption.id}/index.m3u8"`,
        `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch (SDH)",LANGUAGE="de",DEFAULT=NO,AUTOSELECT=YES,` +
          `FORCED=NO,CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,` +
          `public.accessibility.describes-music-and-sound",URI="../captions/${de.caption.id}/index.m3u8"`,
      ]);
      const variants = text.split("\n").filter((l) => l.startsWith("#EXT-X-STREAM-INF:"));
      expect(variants.length).toBeGreaterThan(0);
      for (const v of variants) expect(v).toMatch(/,SUBTITLES="subs"$/);

      // The rendition's URI, resolved as a player does, is the caption's playlist: the whole file as one segment.
      const playlistUrl = new URL(`../captions/${en.caption.id}/index.m3u8`, url).href;
      expect(playlistUrl).toBe(new URL(en.caption.playlistUrl, t.url).href);
      const playlist = await (await get(playlistUrl)).text();
      expect(playlist).toMatch(/^#EXTM3U\n/);
      expect(playlist).toContain("#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:3.");
      expect(playlist).toContain("\ntrack.vtt\n#EXT-X-ENDLIST\n");
      expect((await get(new URL("track.vtt", playlistUrl).href)).status).toBe(200);

      // A new default takes over from the old one; names stay unique.
      const forced = await added({
        videoId: id,
        language: "fr",
        name: "Français",
        text: VTT,
        default: true,
        forced: true,
      });
      expect(forced.video.captions.map((c) => [c.name, c.default])).toEqual([
        ["English", false],
        ["Deutsch (SDH)", false],
        ["Français", true],
      ]);
      expect(await add({ videoId: id, language: "en", name: "English", text: VTT })).toMatchObject({
        __typename: "ValidationError",
        field: "name",
      });
      expect((await master(id)).text).toContain('NAME="Français",LANGUAGE="fr",DEFAULT=YES,AUTOSELECT=YES,FORCED=YES');

      // Removed: the master no longer lists it, its playlist and file are gone.
      const removed = expectTypename(
        (await t.gql(REMOVE, { id: forced.caption.id })).data.removeCaption,
        "RemoveCaptionSuccess",
      );
      expect(removed.video.captions.map((c) => c.id)).toEqual([en.caption.id, de.caption.id]);
      expect((await master(id)).text).not.toContain("Français");
      expect((await get(forced.caption.playlistUrl!)).status).toBe(404);
      expect((await get(forced.caption.url!)).status).toBe(404);
      expect((await t.gql(REMOVE, { id: forced.caption.id })).data.removeCaption.__typename).toBe("NotFoundError");

      // All removed: the master is the worker's again.
      for (const c of [en, de]) await t.gql(REMOVE, { id: c.caption.id });
      const bare = (await master(id)).text;
      expect(bare).not.toContain("SUBTITLES");
      expect(bare).toContain("#EXT-X-STREAM-INF:");
    });

    it("tracks made default at the same time: the master still has one default", async () => {
      const tracks = await Promise.all(
        ["One", "Two", "Three"].map((name) => added({ videoId: id, language: "en", name, text: VTT, default: true })),
      );
      const { text } = await master(id);
      const defaults = text.split("\n").filter((l) => l.includes("TYPE=SUBTITLES") && l.includes("DEFAULT=YES"));
      expect(defaults).toHaveLength(1);
      expect(defaults[0]).toMatch(/NAME="(One|Two|Three)"/);
      for (const a of tracks) await t.gql(REMOVE, { id: a.caption.id });
    });

    it("40 concurrent addCaption on one video leave 30 tracks; the other 10 are refused with the limit", async () => {
      const video = await createVideo("PUBLIC");
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => add({ videoId: video.id, language: "en", name: `Track ${i}`, text: VTT })),
      );
      const refused = results.filter((r) => r.__typename !== "AddCaptionSuccess");
      expect(results.length - refused.length).toBe(30);
      expect(refused).toEqual(
        Array.from({ length: 10 }, () => ({
          __typename: "ValidationError",
          field: "videoId",
          message: "A video has at most 30 caption tracks",
        })),
      );
      expect((await t.gql(VIDEO, { id: video.id })).data.video!.captions).toHaveLength(30);
    });

    it("takes the file in a multipart request, up to 1 MiB", async () => {
      const upload = (bytes: Uint8Array<ArrayBuffer>) => {
        const form = new FormData();
        const input = { videoId: id, language: "es", name: `Español ${bytes.byteLength}`, file: null };
        form.append("operations", JSON.stringify({ query: operationText(ADD), variables: { input } }));
        form.append("map", JSON.stringify({ 0: ["variables.input.file"] }));
        form.append("0", new Blob([bytes]), "es.srt");
        return get("/graphql", { method: "POST", body: form, headers: ADMIN_AUTH }).then((r) => r.json());
      };
      const ok = (await upload(new TextEncoder().encode(SRT))).data.addCaption;
      expect(ok.__typename).toBe("AddCaptionSuccess");
      expect(ok.caption.cueCount).toBe(2);
      const big = new Uint8Array(1024 * 1024 + 1).fill(0x41);
      expect((await upload(big)).data.addCaption).toMatchObject({ __typename: "FileTooLargeError", maxBytes: 1048576 });
      // Latin-1 bytes are not UTF-8: refused where they are.
      const latin1 = new Uint8Array([
        ...new TextEncoder().encode("1\n00:00:01,000 --> 00:00:02,000\n"),
        0x47,
        0xfc,
        0x6e,
      ]);
      expect((await upload(latin1)).data.addCaption).toMatchObject({ __typename: "InvalidCaptionsError", line: 3 });
      await t.gql(REMOVE, { id: ok.caption.id });
    });

    it("refuses hostile or broken input with a union error that says where", async () => {
      const invalid: [string, string, number | null, RegExp][] = [
        ["bad timestamp", "1\n00:00:01,000 --> 00:00:2,000\nx\n", 2, /not a timestamp/],
        ["minutes past 59", "WEBVTT\n\n00:61:00.000 --> 00:62:00.000\nx\n", 3, /past 59/],
        ["ends before it starts", "WEBVTT\n\nid\n00:00:05.000 --> 00:00:04.000\nx\n", 4, /ends before/],
        [
          "no blank line between cues",
          "1\n00:00:01,000 --> 00:00:02,000\nx\n2\n00:00:03,000 --> 00:00:04,000\n",
          5,
          /-->/,
        ],
        ["binary junk", "WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n\u0000\u0001\u0002PNG", 6, /Binary/],
        ["text without cues", "Just some words\nand more\n", 1, /Expected a subtitle/],
        ["a header without cues", "WEBVTT\n", null, /no cues/],
        ["an empty file", " \r\n\r\n", null, /empty/],
        ["unknown cue setting", "WEBVTT\n\n00:01.000 --> 00:02.000 onclick:x\nx\n", 3, /Unknown cue setting/],
        ["past 100 hours", "1\n999:00:00,000 --> 999:00:01,000\nx\n", 2, /100 hours/],
      ];
      for (const [what, text, line, message] of invalid) {
        const result = await add({ videoId: id, language: "en", name: what, text });
        expect(result, what).toMatchObject({ __typename: "InvalidCaptionsError", line });
        expect(expectTypename(result, "InvalidCaptionsError").message, what).toMatch(message);
      }
      const srtAsVtt = await add({ videoId: id, language: "en", name: "x", text: SRT, format: "WEBVTT" });
      expect(srtAsVtt).toMatchObject({ __typename: "InvalidCaptionsError", line: 1 });

      const rejected: [Partial<VariablesOf<typeof ADD>["input"]>, string][] = [
        [{ language: "en_US" }, "language"],
        [{ language: "not a tag" }, "language"],
        [{ language: "x".repeat(36) }, "language"],
        [{ name: 'Say "hi"' }, "name"],
        [{ name: "two\nlines" }, "name"],
        [{ name: "   " }, "name"],
        [{ text: null }, "text"],
      ];
      for (const [change, field] of rejected) {
        const result = await add({ videoId: id, language: "en", name: "English", text: VTT, ...change });
        expect(result, JSON.stringify(change)).toMatchObject({ __typename: "ValidationError", field });
      }
      const huge = `WEBVTT\n\n00:01.000 --> 00:02.000\n${"é".repeat(512 * 1024)}\n`;
      expect(await add({ videoId: id, language: "en", name: "Huge", text: huge })).toMatchObject({
        __typename: "FileTooLargeError",
        maxBytes: 1024 * 1024,
      });
      const missing = "00000000-0000-4000-8000-000000000000";
      expect(await add({ videoId: missing, language: "en", name: "E", text: VTT })).toMatchObject({
        __typename: "NotFoundError",
        id: missing,
      });
      expect((await t.gql(VIDEO, { id })).data.video!.captions).toEqual([]);
    });

    it("updateCaption: name, language and default by addCaption's rules; the master follows", async () => {
      const update = async (captionId: string, input: VariablesOf<typeof UPDATE>["input"], authorization?: string) =>
        (await t.gql(UPDATE, { id: captionId, input }, authorization)).data!.updateCaption;
      const first = (await added({ videoId: id, language: "en", name: "First", text: VTT, default: true })).caption;
      const second = (await added({ videoId: id, language: "fr", name: "Second", text: SRT })).caption;

      // One track becomes the default: the other loses it in the same step.
      expect(await update(second.id, { default: true, name: " Français ", language: "FR-ca" })).toEqual({
        __typename: "UpdateCaptionSuccess",
        caption: { id: second.id, name: "Français", language: "fr-CA", default: true },
        video: {
          captions: [
            { name: "First", default: false },
            { name: "Français", default: true },
          ],
        },
      });
      const subtitles = async () =>
        (await master(id)).text.split("\n").filter((l) => l.startsWith("#EXT-X-MEDIA:TYPE=SUBTITLES"));
      const listed = await subtitles();
      expect(listed).toHaveLength(2);
      expect(listed[0]).toContain('NAME="First",LANGUAGE="en",DEFAULT=NO,');
      expect(listed[1]).toContain('NAME="Français",LANGUAGE="fr-CA",DEFAULT=YES,AUTOSELECT=YES,');

      // A field left out stays; addCaption's rules refuse the same input, and nothing changes.
      expect(await update(first.id, { name: "Erste" })).toMatchObject({
        caption: { name: "Erste", language: "en", default: false },
      });
      expect(await update(first.id, { language: "not a tag" })).toMatchObject({
        __typename: "ValidationError",
        field: "language",
        message: expect.stringMatching(/not a BCP-47 language tag/),
      });
      expect(await update(first.id, { name: 'Say "hi"' })).toMatchObject({
        __typename: "ValidationError",
        field: "name",
      });
      expect(await update(first.id, { name: "x".repeat(101) })).toMatchObject({
        __typename: "ValidationError",
        field: "name",
      });
      expect(await update(first.id, { name: "Français", default: true })).toMatchObject({
        __typename: "ValidationError",
        field: "name",
        message: 'The video already has a caption track named "Français"',
      });
      const captions = async () => (await t.gql(CAPTIONS, { id })).data.video!.captions;
      expect(await captions()).toEqual([
        { name: "Erste", language: "en", default: false },
        { name: "Français", language: "fr-CA", default: true },
      ]);

      // default: false leaves the video without a default track.
      expect(await update(second.id, { default: false })).toMatchObject({ caption: { default: false } });
      expect((await subtitles()).filter((l) => l.includes("DEFAULT=YES"))).toEqual([]);

      // Another tenant's caption, an unknown id and one that is no UUID are not found; nothing changes.
      expect(await update(first.id, { name: "Intruder" }, keyB)).toEqual({ __typename: "NotFoundError", id: first.id });
      const missing = "00000000-0000-4000-8000-000000000000";
      expect(await update(missing, { default: true })).toEqual({ __typename: "NotFoundError", id: missing });
      expect(await update("nope", { default: true })).toEqual({ __typename: "NotFoundError", id: "nope" });
      expect((await captions()).map((c) => c.name)).toEqual(["Erste", "Français"]);
      await t.gql(REMOVE, { id: first.id });
      await t.gql(REMOVE, { id: second.id });
    });

    it("another tenant can neither add to, read nor remove the video's captions", async () => {
      const own = await added({ videoId: id, language: "en", name: "Own", text: VTT });
      expect(await add({ videoId: id, language: "en", name: "Intruder", text: VTT }, keyB)).toMatchObject({
        __typename: "NotFoundError",
        id,
      });
      expect((await t.gql(VIDEO, { id }, keyB)).data.video).toBeNull();
      expect((await t.gql(REMOVE, { id: own.caption.id }, keyB)).data.removeCaption.__typename).toBe("NotFoundError");
      expect((await t.gql(VIDEO, { id })).data.video!.captions.map((c) => c.name)).toEqual(["Own"]);
      // A playlist URL naming one video's caption under another video's prefix finds nothing.
      const other = await readyVideo("PUBLIC");
      expect((await get(`/media/videos/${other}/captions/${own.caption.id}/index.m3u8`)).status).toBe(404);
      await t.gql(REMOVE, { id: own.caption.id });
    });
  });

  it("an fMP4 video's caption file maps cue time 0 to its first frame, also one stored with the MPEG-TS map", async () => {
    const created = await createUpload(t, "fmp4", { playbackPolicy: "PUBLIC", segmentFormat: "FMP4" });
    const caption = await added({ videoId: created.id, language: "en", name: "English", text: VTT });
    const fmp4Map = `X-TIMESTAMP-MAP=MPEGTS:${MEDIA_TIME_ZERO_90KHZ.FMP4},LOCAL:00:00:00.000`;
    const served = await (await get(caption.caption.url)).text();
    expect(served.split("\n").slice(0, 3)).toEqual(["WEBVTT", fmp4Map, ""]);
    // As every caption was once stored, whatever the video's segments: served with the map they need.
    const tsMap = `X-TIMESTAMP-MAP=MPEGTS:${MEDIA_TIME_ZERO_90KHZ.TS},LOCAL:00:00:00.000`;
    const body = Buffer.from(served.replace(fmp4Map, tsMap));
    await t.app.services.storage.write(captionKey(created.id, caption.caption.id), Readable.from([body]), {
      limit: body.byteLength,
      contentType: "text/vtt; charset=utf-8",
    });
    expect(await (await get(caption.caption.url)).text()).toBe(served);
  });

  it("a caption added before the upload is in the master the encode publishes", async () => {
    const video = await createVideo("PUBLIC");
    const early = await added({ videoId: video.id, language: "en", name: "Early", text: VTT });
    await uploadAndWait(video);
    const { text } = await master(video.id);
    expect(text).toContain(`NAME="Early",LANGUAGE="en"`);
    expect(text).toContain(`URI="../captions/${early.caption.id}/index.m3u8"`);
  });

  it("a SIGNED video's subtitle playlist and file need its token", async () => {
    const id = await readyVideo("SIGNED");
    const caption = await added({ videoId: id, language: "en", name: "English", text: VTT });
    expect(caption.caption.playlistUrl).toMatch(/\/index\.m3u8\?token=/);
    const bare = (u: string) => new URL(u.split("?")[0]!, t.url).href;
    expect((await get(bare(caption.caption.playlistUrl))).status).toBe(403);
    expect((await get(bare(caption.caption.url))).status).toBe(403);

    const { url, text } = await master(id);
    const uri = /TYPE=SUBTITLES,.*URI="([^"]+)"/.exec(text)![1]!;
    expect(uri).toMatch(new RegExp(`^\\.\\./captions/${caption.caption.id}/index\\.m3u8\\?token=`));
    const playlistRes = await get(new URL(uri, url).href);
    expect(playlistRes.status).toBe(200);
    const playlist = await playlistRes.text();
    const segment = playlist.split("\n").find((l) => l.startsWith("track.vtt"))!;
    expect(segment).toMatch(/^track\.vtt\?token=/);
    const file = await get(new URL(segment, new URL(uri, url)).href);
    expect(file.status).toBe(200);
    expect(await file.text()).toContain("Hello <i>there</i>");
    // The caption's own URLs, as the API hands them out, work too.
    expect((await get(caption.caption.url)).status).toBe(200);
  });
});
