import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH, tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, operationText, type VariablesOf } from "./support/graphql.ts";
import { makeClip, makeTone, makeUndecodableAudio } from "./support/media-fixtures.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { waitFor } from "./support/wait-for.ts";

const ADD = graphql(`
  mutation($input: AddAudioTrackInput!) {
    addAudioTrack(input: $input) {
      __typename
      ... on AddAudioTrackSuccess { audioTrack { id status } }
      ... on ValidationError { field message }
      ... on NotFoundError { id }
      ... on FileTooLargeError { maxBytes }
    } }`);
const UPDATE = graphql(`
  mutation($id: ID!, $input: UpdateAudioTrackInput!) {
    updateAudioTrack(id: $id, input: $input) {
      __typename
      ... on UpdateAudioTrackSuccess { audioTrack { name default } }
      ... on NotFoundError { id }
    } }`);
const REMOVE = graphql(`
  mutation($id: ID!) { removeAudioTrack(id: $id) { __typename ... on RemoveAudioTrackSuccess { removedAudioTrackId } } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) {
    status playbackUrl
    audioTracks { id name language default status error sourceDuration playlistUrl }
  } }`);

const VIDEO_SECONDS = 4;
const run = promisify(execFile);

/** ffprobe's view of the audio in `file`: codec, rate, channels, its first packet's time and its packets' span. */
async function probeAudio(file: string) {
  const { stdout } = await run("ffprobe", [
    ...["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name,sample_rate,channels"],
    ...["-show_entries", "packet=pts_time,duration_time", "-of", "json", file],
  ]);
  const json = JSON.parse(stdout) as {
    streams: { codec_name: string; sample_rate: string; channels: number }[];
    packets: { pts_time: string; duration_time: string }[];
  };
  const first = Number(json.packets[0]!.pts_time);
  const last = json.packets.at(-1)!;
  return {
    codec: json.streams[0]!.codec_name,
    sampleRate: Number(json.streams[0]!.sample_rate),
    channels: json.streams[0]!.channels,
    start: first,
    duration: Number(last.pts_time) + Number(last.duration_time) - first,
  };
}

describe("alternate audio tracks through the public API", () => {
  let t: TestApp;
  let keyB: string;
  let files: Server;
  let filesUrl: string;
  const add = async (input: VariablesOf<typeof ADD>["input"], authorization?: string) =>
    (await t.gql(ADD, { input }, authorization)).data!.addAudioTrack;
  const tracksOf = async (id: string) => (await t.gql(VIDEO, { id })).data.video!.audioTracks;
  const settled = (id: string) =>
    waitFor(
      "the audio tracks to settle",
      () => tracksOf(id),
      (tracks) => tracks.every((track) => track.status !== "PROCESSING"),
    );

  /** addAudioTrack with `file` in a GraphQL multipart request, as the console sends it. */
  async function addFile(input: Omit<VariablesOf<typeof ADD>["input"], "file">, bytes: Uint8Array, name: string) {
    const form = new FormData();
    form.append(
      "operations",
      JSON.stringify({ query: operationText(ADD), variables: { input: { ...input, file: null } } }),
    );
    form.append("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.append("0", new Blob([bytes as Uint8Array<ArrayBuffer>]), name);
    const res = await fetch(`${t.url}/graphql`, { method: "POST", body: form, headers: ADMIN_AUTH });
    return ((await res.json()) as { data: { addAudioTrack: { __typename: string; audioTrack?: { id: string } } } }).data
      .addAudioTrack;
  }

  /** The master as a player gets it. */
  async function masterOf(id: string): Promise<{ url: string; text: string }> {
    const url = new URL((await t.gql(VIDEO, { id })).data.video!.playbackUrl!, t.url).href;
    const res = await fetch(url);
    expect(res.status).toBe(200);
    return { url, text: await res.text() };
  }

  /** A media playlist's segments (with its init segment), concatenated into one file ffprobe reads. */
  async function segmentsFile(playlistUrl: string, name: string): Promise<string> {
    const text = await (await fetch(playlistUrl)).text();
    const uris = [
      ...(/#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.slice(1) ?? []),
      ...text.split("\n").filter((l) => l !== "" && !l.startsWith("#")),
    ];
    const parts = await Promise.all(
      uris.map(async (uri) => {
        const res = await fetch(new URL(uri, playlistUrl));
        expect(res.status, uri).toBe(200);
        return Buffer.from(await res.arrayBuffer());
      }),
    );
    const file = path.join(t.dataDir, name);
    await writeFile(file, Buffer.concat(parts));
    return file;
  }

  let videoId: string;
  beforeAll(async () => {
    t = await startTestApp({ env: { URL_IMPORT_ALLOW_PRIVATE: "true" } });
    keyB = `Bearer ${await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b")}`;
    const long = await readFile(await makeTone(6, 880, "mp3"));
    files = createServer((req, res) => {
      if (req.url === "/long.mp3") return res.writeHead(200, { "content-type": "audio/mpeg" }).end(long);
      if (req.url === "/playlist.m3u8") {
        return res
          .writeHead(200)
          .end("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n");
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    // A SIGNED video: every URL below carries its token, the track's playlists and segments included.
    const clip = await makeClip({ width: 160, height: 90, seconds: VIDEO_SECONDS, audio: true });
    const video = await createUpload(t, "dubbed", { playbackPolicy: "SIGNED" });
    const final = finalState(t, video.id);
    expect((await fetch(`${t.url}${video.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    expect((await final).status).toBe("READY");
    videoId = video.id;
  });
  afterAll(async () => {
    await new Promise((resolve) => files?.close(resolve));
    await t?.stop();
  });

  it("encodes an uploaded file and a URL's as AAC rungs of the video's length, on its timeline, listed in its master", async () => {
    const short = await readFile(await makeTone(2, 660, "wav"));
    const upload = await addFile({ videoId, language: "DE", name: "Deutsch" }, short, "de.wav");
    expect(upload.__typename).toBe("AddAudioTrackSuccess");
    const fromUrl = expectTypename(
      await add({ videoId, language: "fr", name: "Français", url: `${filesUrl}/long.mp3`, default: true }),
      "AddAudioTrackSuccess",
    );
    expect(fromUrl.audioTrack.status).toBe("PROCESSING");
    const tracks = await settled(videoId);
    expect(
      tracks.map(({ name, language, default: isDefault, status }) => ({ name, language, isDefault, status })),
    ).toEqual([
      { name: "Deutsch", language: "de", isDefault: false, status: "READY" },
      { name: "Français", language: "fr", isDefault: true, status: "READY" },
    ]);
    expect(tracks[0]!.sourceDuration).toBeCloseTo(2, 1);
    expect(tracks[1]!.sourceDuration).toBeCloseTo(6, 1);
    expect((await t.gql(VIDEO, { id: videoId })).data.video!.status).toBe("READY");

    // The master: the ladder's audio loses DEFAULT=YES to the default track; each URI carries the token.
    const master = await masterOf(videoId);
    const media = master.text.split("\n").filter((l) => l.startsWith("#EXT-X-MEDIA:TYPE=AUDIO"));
    expect(media).toHaveLength(3);
    expect(media[0]).toMatch(/NAME="default",DEFAULT=NO,/);
    expect(media[1]).toMatch(/^#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Deutsch",LANGUAGE="de",DEFAULT=NO,/);
    expect(media[2]).toMatch(/NAME="Français",LANGUAGE="fr",DEFAULT=YES,/);
    const uri = /URI="([^"]+)"/.exec(media[1]!)![1]!;
    expect(uri).toMatch(new RegExp(`^\\.\\./audio/${tracks[0]!.id}/hls/track/index\\.m3u8\\?token=`));
    // Without the token the track's playlist is refused, as the video's are.
    const trackUrl = new URL(uri, master.url);
    expect((await fetch(trackUrl.href.replace(/\?token=.*$/, ""))).status).toBe(403);

    // Each track: AAC at the ladder's rate, as long as the video, starting where the ladder's audio starts.
    const ladderAudio = /NAME="default"[^\n]*URI="([^"]+)"/.exec(master.text)![1]!;
    const reference = await probeAudio(await segmentsFile(new URL(ladderAudio, master.url).href, "ladder-audio"));
    for (const i of tracks.keys()) {
      const trackUri = /URI="([^"]+)"/.exec(media[i + 1]!)![1]!;
      const probed = await probeAudio(await segmentsFile(new URL(trackUri, master.url).href, `track-${i}`));
      expect(probed).toMatchObject({ codec: "aac", sampleRate: 48_000, channels: 2 });
      // Padded (2 s of sound) or cut (6 s) to the video's 4 s, as long as the ladder's own audio to an AAC frame.
      expect(Math.abs(probed.duration - VIDEO_SECONDS), JSON.stringify(probed)).toBeLessThan(0.05);
      expect(Math.abs(probed.duration - reference.duration), JSON.stringify({ probed, reference })).toBeLessThan(0.03);
      expect(Math.abs(probed.start - reference.start), JSON.stringify({ probed, reference })).toBeLessThan(0.03);
    }
  });

  it("cuts a track for an instant clip, as it cuts the ladder's rungs", async () => {
    const master = await masterOf(videoId);
    const clipped = await (await fetch(`${master.url}&asset_start_time=2&asset_end_time=4`)).text();
    const uri = /NAME="Deutsch"[^\n]*URI="([^"]+)"/.exec(clipped)![1]!;
    expect(uri).toMatch(/asset_start_time=2/);
    const playlist = await (await fetch(new URL(uri, master.url))).text();
    const listed = playlist.split("\n").filter((l) => l.startsWith("#EXTINF:"));
    const wholeUrl = new URL(uri, master.url);
    wholeUrl.searchParams.delete("asset_start_time");
    wholeUrl.searchParams.delete("asset_end_time");
    const whole = (await (await fetch(wholeUrl)).text()).split("\n").filter((l) => l.startsWith("#EXTINF:"));
    // 4 s in segments of 1, 2 and 1 s: the clip from 2 s on lists the last two.
    expect(whole).toHaveLength(3);
    expect(listed, playlist).toHaveLength(2);
  });

  it("changes a track's name and default, and removes it from the master and storage", async () => {
    const [de, fr] = await tracksOf(videoId);
    const renamed = await t.gql(UPDATE, { id: de!.id, input: { name: "Deutsch (Synchron)", default: true } });
    expect(renamed.data.updateAudioTrack).toMatchObject({ audioTrack: { name: "Deutsch (Synchron)", default: true } });
    expect((await tracksOf(videoId)).map((track) => track.default)).toEqual([true, false]);
    const playlistUrl = new URL(fr!.playlistUrl!, t.url).href;
    expect((await fetch(playlistUrl)).status).toBe(200);
    const removed = await t.gql(REMOVE, { id: fr!.id });
    expect(removed.data.removeAudioTrack).toMatchObject({ removedAudioTrackId: fr!.id });
    expect((await fetch(playlistUrl)).status).toBe(404);
    const master = (await masterOf(videoId)).text;
    expect(master).not.toContain("Français");
    expect(master).toMatch(/NAME="Deutsch \(Synchron\)",LANGUAGE="de",DEFAULT=YES,/);
  });

  it("fails the track, not the video, on a file that does not decode or is not media", async () => {
    const noise = await readFile(await makeUndecodableAudio(2));
    expect((await addFile({ videoId, language: "en", name: "Noise" }, noise, "noise.m4a")).__typename).toBe(
      "AddAudioTrackSuccess",
    );
    const playlist = await add({ videoId, language: "en", name: "Playlist", url: `${filesUrl}/playlist.m3u8` });
    expect(playlist.__typename).toBe("AddAudioTrackSuccess");
    const tracks = await settled(videoId);
    const failed = Object.fromEntries(
      tracks.filter((track) => track.status === "FAILED").map((x) => [x.name, x.error]),
    );
    expect(failed.Noise).toMatch(/does not decode/);
    expect(failed.Playlist).toMatch(/HLS playlist/);
    expect(tracks.find((track) => track.name === "Noise")!.playlistUrl).toBeNull();
    expect((await t.gql(VIDEO, { id: videoId })).data.video!.status).toBe("READY");
    expect((await masterOf(videoId)).text).not.toMatch(/Noise|Playlist/);
  });

  it("refuses bad input with a union error that names the field", async () => {
    const refused = async (input: Partial<VariablesOf<typeof ADD>["input"]>) =>
      add({ videoId, language: "en", name: "English", url: `${filesUrl}/long.mp3`, ...input });
    expect(await refused({ language: "not a language!" })).toMatchObject({
      __typename: "ValidationError",
      field: "language",
    });
    expect(await refused({ name: 'The "best" one' })).toMatchObject({ __typename: "ValidationError", field: "name" });
    expect(await refused({ url: null })).toMatchObject({ __typename: "ValidationError", field: "file" });
    expect(await refused({ url: "ftp://example.com/a.mp3" })).toMatchObject({
      __typename: "ValidationError",
      field: "url",
    });
    expect(await refused({ name: "Deutsch (Synchron)" })).toMatchObject({
      __typename: "ValidationError",
      field: "name",
    });
    // At most 8 tracks on a video, whatever their state: fill it up with rows, as failed tracks would.
    const db = t.app.services.db;
    const have = (await tracksOf(videoId)).length;
    const names = Array.from({ length: 8 - have }, (_, i) => `Filler ${i}`);
    await db.audioTrack.createMany({
      data: names.map((name) => ({ videoId, language: "en", name, status: "FAILED" })),
    });
    const full = await refused({ name: "The ninth" });
    expect(full).toMatchObject({
      __typename: "ValidationError",
      field: "videoId",
      message: expect.stringMatching(/at most 8/),
    });
    await db.audioTrack.deleteMany({ where: { videoId, name: { in: names } } });
    const waiting = await createUpload(t, "not yet");
    expect(await refused({ videoId: waiting.id })).toMatchObject({ __typename: "ValidationError", field: "videoId" });
    // READY, but silent, or with no pictures (set on the row: no encode needed to show the refusal).
    await db.video.update({
      where: { id: waiting.id },
      data: { status: "READY", width: 160, height: 90, hasAudio: false },
    });
    expect(await refused({ videoId: waiting.id })).toMatchObject({
      field: "videoId",
      message: expect.stringMatching(/without sound/),
    });
    await db.video.update({ where: { id: waiting.id }, data: { width: null, height: null, hasAudio: true } });
    expect(await refused({ videoId: waiting.id })).toMatchObject({
      field: "videoId",
      message: expect.stringMatching(/audio-only/),
    });
  });

  it("holds the bound and one default when additions race, under the video's lock", async () => {
    const before = await tracksOf(videoId);
    // URLs that answer 404: their jobs fail at once, with the reason, and encode nothing.
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        add({ videoId, language: "en", name: `Racer ${i}`, url: `${filesUrl}/missing-${i}.mp3`, default: true }),
      ),
    );
    const added = answers.filter((a) => a.__typename === "AddAudioTrackSuccess");
    expect(added).toHaveLength(8 - before.length);
    for (const refusal of answers.filter((a) => a.__typename !== "AddAudioTrackSuccess")) {
      expect(refusal).toMatchObject({ __typename: "ValidationError", field: "videoId" });
    }
    const tracks = await settled(videoId);
    expect(tracks.filter((track) => track.default)).toHaveLength(1);
    const racers = tracks.filter((track) => track.name.startsWith("Racer"));
    for (const racer of racers) expect(racer).toMatchObject({ status: "FAILED", error: expect.stringMatching(/404/) });
    // The default is a failed track: the master lists no track as its default, so the video's own audio keeps it.
    expect((await masterOf(videoId)).text).toMatch(/NAME="default",DEFAULT=YES,/);
    for (const racer of racers) await t.gql(REMOVE, { id: racer.id });
  });

  it("is another tenant's: not found, exactly like a missing one", async () => {
    const [track] = await tracksOf(videoId);
    const input = { videoId, language: "en", name: "Intruder", url: `${filesUrl}/long.mp3` };
    expect(await add(input, keyB)).toMatchObject({ __typename: "NotFoundError", id: videoId });
    const update = await t.gql(UPDATE, { id: track!.id, input: { name: "Mine" } }, keyB);
    expect(update.data.updateAudioTrack).toMatchObject({ __typename: "NotFoundError", id: track!.id });
    const remove = await t.gql(REMOVE, { id: track!.id }, keyB);
    expect(remove.data.removeAudioTrack.__typename).toBe("NotFoundError");
    expect((await tracksOf(videoId))[0]!.name).toBe(track!.name);
  });
});
