import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { actualJobCost, DEFAULT_COST_SETTINGS } from "../src/costs/cost-model.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH, tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, operationText, type ResultOf } from "./support/graphql.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { makeAudioOnly, makeClip } from "./support/media-fixtures.ts";

const run = promisify(execFile);

// The renditions createUpload answers with, which the shared createUpload (support/uploads.ts) does not read.
const CREATE_UPLOAD = graphql(`
  mutation($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl video { id staticRenditions { name status url } } }
      ... on Error { message }
    } }`);
const VIDEO = graphql(`
  query($id: ID!) {
    video(id: $id) {
      status playable duration
      staticRenditions { name status width height bitrate sizeBytes error url downloadUrl }
      jobs(first: 10) { edges { node { kind status runs { status } cost { actualUsd cpuSeconds wallSeconds } } } }
    } }`);
const REQUEST = graphql(`
  mutation($id: ID!, $names: [StaticRenditionName!]!) {
    requestStaticRenditions(videoId: $id, names: $names) {
      __typename
      ... on RequestStaticRenditionsSuccess { video { status staticRenditions { name status error } } }
      ... on ValidationError { field message }
      ... on NotFoundError { id message }
    } }`);
const UPLOAD_VIDEO = graphql(`
  mutation($f: File!) { uploadVideo(file: $f, title: "podcast", staticRenditions: [HIGHEST, AUDIO]) {
    __typename ... on UploadVideoSuccess { video { id staticRenditions { name status } } } } }`);

type Video = NonNullable<ResultOf<typeof VIDEO>["video"]>;

/** Uploads `clip` through createUpload with `input` and resolves with the video's id once it is READY. */
async function uploadReady(
  t: TestApp,
  clip: string,
  { title, ...input }: { title: string } & Parameters<typeof createUpload>[2],
): Promise<string> {
  const { id, uploadUrl } = await createUpload(t, title, input);
  const final = finalState(t, id);
  expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
  expect((await final).status).toBe("READY");
  return id;
}

/**
 * The video once none of its renditions is PREPARING and none of its jobs waits or runs (a state,
 * polled through the API: one query reads the renditions and the jobs in separate statements, so
 * one answer may hold the renditions after the job's end and the job before it).
 */
async function renditionsSettled(t: TestApp, id: string): Promise<Video> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const video = (await t.gql(VIDEO, { id })).data.video!;
    const preparing = video.staticRenditions.some((r) => r.status === "PREPARING");
    const working = video.jobs.edges.some((e) => e.node.status === "QUEUED" || e.node.status === "RUNNING");
    if (!preparing && !working) return video;
    if (Date.now() > deadline) throw new Error(`renditions still preparing: ${JSON.stringify(video)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function ffprobe(file: string): Promise<any> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_streams", "-show_format", "-of", "json", file]);
  return JSON.parse(stdout);
}

/** The top-level boxes of an MP4, in file order. */
function topLevelBoxes(bytes: Buffer): string[] {
  const boxes: string[] = [];
  for (let at = 0; at + 8 <= bytes.length; ) {
    let size = bytes.readUInt32BE(at);
    const type = bytes.toString("latin1", at + 4, at + 8);
    if (size === 1) size = Number(bytes.readBigUInt64BE(at + 8));
    if (size === 0) size = bytes.length - at;
    boxes.push(type);
    at += size;
  }
  return boxes;
}

/** Start of a stream's first packet, in seconds, as ffprobe reads the file. */
async function firstPts(file: string, stream: "v" | "a"): Promise<number> {
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-select_streams",
    `${stream}:0`,
    "-show_entries",
    "packet=pts_time",
    "-read_intervals",
    "%+#1",
    "-of",
    "csv=p=0",
    file,
  ]);
  // csv may end a line with a comma (an empty side-data column).
  return Number.parseFloat(stdout.trim().split("\n")[0]!);
}

describe("static MP4 renditions (public API, real worker and ffmpeg)", () => {
  let t: TestApp;
  let keyB: string;
  beforeAll(async () => {
    t = await startTestApp();
    keyB = await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b");
  });
  afterAll(async () => {
    await t?.stop();
  });

  it(`asked for at creation: PREPARING until READY, then a faststart MP4 of the highest and of a small rung and an \
M4A, in sync, served with Range and a safe download name`, async () => {
    const clip = await makeClip({ width: 640, height: 480, seconds: 4, audio: true });
    const created = expectTypename(
      (
        await t.gql(CREATE_UPLOAD, {
          input: { title: `../../"évil" name<script>.exe`, staticRenditions: ["HIGHEST", "LOW", "AUDIO", "LOW"] },
        })
      ).data.createUpload,
      "CreateUploadSuccess",
    );
    expect(created.video.staticRenditions).toEqual([
      { name: "HIGHEST", status: "PREPARING", url: null },
      { name: "LOW", status: "PREPARING", url: null },
      { name: "AUDIO", status: "PREPARING", url: null },
    ]);
    const { id } = created.video;
    // The API refuses control characters in titles now; a row made before it may still hold them.
    await t.app.services.db.video.update({ where: { id }, data: { title: `../../"évil"\r\nname<script>.exe` } });
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await final).status).toBe("READY");

    const video = await renditionsSettled(t, id);
    expect(video.status).toBe("READY");
    expect(video.playable).toBe(true);
    const byName = new Map(video.staticRenditions.map((r) => [r.name, r]));
    expect(byName.get("HIGHEST")).toMatchObject({ status: "READY", width: 640, height: 480, error: null });
    expect(byName.get("LOW")).toMatchObject({ status: "READY", width: 480, height: 360, error: null });
    expect(byName.get("AUDIO")).toMatchObject({ status: "READY", width: null, height: null, error: null });
    expect(video.jobs.edges.map((e) => [e.node.kind, e.node.status, e.node.runs])).toEqual([
      ["STATIC_RENDITIONS", "SUCCEEDED", [{ status: "SUCCEEDED" }]],
      ["TRANSCODE", "SUCCEEDED", [{ status: "SUCCEEDED" }]],
    ]);
    // The renditions job's actual cost stores the files it made a month, as its estimate does
    // those it would make: read with them (one transaction writes both).
    const cost = video.jobs.edges[0]!.node.cost!;
    const priced = (storedBytes: number) =>
      actualJobCost(DEFAULT_COST_SETTINGS, {
        cpuSeconds: cost.cpuSeconds!,
        wallSeconds: cost.wallSeconds!,
        queue: "cpu",
        ladder: null,
        storedBytes,
      }).usd;
    const files = video.staticRenditions.reduce((sum, r) => sum + r.sizeBytes!, 0);
    expect(cost.actualUsd).toBeCloseTo(priced(files), 15);
    expect(priced(files)).toBeGreaterThan(priced(0));

    const hlsDir = path.join(t.dataDir, "videos", id, "hls");
    for (const r of video.staticRenditions) {
      expect(r.url).toMatch(new RegExp(`^/media/videos/${id}/mp4/${r.name.toLowerCase()}\\.(mp4|m4a)$`));
      const res = await fetch(`${t.url}${r.url}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(r.name === "AUDIO" ? "audio/mp4" : "video/mp4");
      const bytes = Buffer.from(await res.arrayBuffer());
      expect(bytes.length).toBe(r.sizeBytes);
      expect(r.bitrate).toBe(Math.round((bytes.length * 8) / Number((await ffprobeBytes(bytes)).format.duration)));
      // Faststart: the index (moov) comes before the media (mdat), so playback starts before the whole file is in.
      const boxes = topLevelBoxes(bytes);
      expect(boxes.indexOf("moov"), boxes.join(",")).toBeGreaterThan(-1);
      expect(boxes.indexOf("moov")).toBeLessThan(boxes.indexOf("mdat"));
      const file = path.join(t.dataDir, `probe-${r.name}`);
      await writeFile(file, bytes);
      const probe = await ffprobe(file);
      expect(Number(probe.format.duration)).toBeCloseTo(video.duration!, 0);
      expect(Math.abs(Number(probe.format.duration) - 4)).toBeLessThan(0.15);
      const codecs = probe.streams.map((s: any) => s.codec_name).sort();
      expect(codecs).toEqual(r.name === "AUDIO" ? ["aac"] : ["aac", "h264"]);
      if (r.name !== "AUDIO") {
        const rung = r.name === "HIGHEST" ? "480p" : "360p";
        const v = probe.streams.find((s: any) => s.codec_type === "video");
        expect([v.width, v.height]).toEqual([r.width, r.height]);
        // In sync: audio starts as far from the video in the MP4 as in the HLS rungs it came from.
        const hlsOffset =
          (await firstPts(path.join(hlsDir, "audio", "seg_00000.ts"), "a")) -
          (await firstPts(path.join(hlsDir, rung, "seg_00000.ts"), "v"));
        const mp4Offset = (await firstPts(file, "a")) - (await firstPts(file, "v"));
        expect(Math.abs(mp4Offset - hlsOffset), `hls ${hlsOffset} mp4 ${mp4Offset}`).toBeLessThan(0.005);
      }
    }

    const highest = byName.get("HIGHEST")!;
    const whole = Buffer.from(await (await fetch(`${t.url}${highest.url}`)).arrayBuffer());
    const ranged = await fetch(`${t.url}${highest.url}`, { headers: { range: "bytes=100-1099" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 100-1099/${whole.length}`);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(whole.subarray(100, 1100))).toBe(true);

    expect(highest.downloadUrl).toBe(`${highest.url}?download=evil-name-script-exe-highest.mp4`);
    const download = await fetch(`${t.url}${highest.downloadUrl}`);
    expect(download.status).toBe(200);
    expect(download.headers.get("content-disposition")).toBe('attachment; filename="evil-name-script-exe-highest.mp4"');
    for (const crafted of ["../x.mp4", 'a".mp4', "a.exe", "a.m4a", "a\r\nx: y.mp4"]) {
      const res = await fetch(`${t.url}${highest.url}?download=${encodeURIComponent(crafted)}`);
      expect(res.status, crafted).toBe(400);
      expect(res.headers.get("content-disposition")).toBeNull();
    }
  });

  it("an audio-only upload sent as uploadVideo gets its M4A; HIGHEST is SKIPPED (no picture)", async () => {
    const audio = await readFile(await makeAudioOnly(3));
    const form = new FormData();
    form.append("operations", JSON.stringify({ query: operationText(UPLOAD_VIDEO), variables: { f: null } }));
    form.append("map", JSON.stringify({ 0: ["variables.f"] }));
    form.append("0", new Blob([audio], { type: "audio/mp4" }), "podcast.m4a");
    const res = await fetch(`${t.url}/graphql`, { method: "POST", body: form, headers: ADMIN_AUTH });
    const answer = (await res.json()) as { data: ResultOf<typeof UPLOAD_VIDEO> };
    const uploaded = expectTypename(answer.data.uploadVideo, "UploadVideoSuccess");
    expect(uploaded.video.staticRenditions).toEqual([
      { name: "HIGHEST", status: "PREPARING" },
      { name: "AUDIO", status: "PREPARING" },
    ]);
    const { id } = uploaded.video;
    expect((await finalState(t, id)).status).toBe("READY");
    const video = await renditionsSettled(t, id);
    const byName = new Map(video.staticRenditions.map((r) => [r.name, r]));
    expect(byName.get("HIGHEST")).toMatchObject({ status: "SKIPPED", url: null });
    const m4a = byName.get("AUDIO")!;
    expect(m4a).toMatchObject({ status: "READY", error: null });
    const bytes = Buffer.from(await (await fetch(`${t.url}${m4a.url}`)).arrayBuffer());
    const file = path.join(t.dataDir, "probe-podcast.m4a");
    await writeFile(file, bytes);
    const probe = await ffprobe(file);
    expect(probe.streams.map((s: any) => s.codec_name)).toEqual(["aac"]);
    expect(Math.abs(Number(probe.format.duration) - 3)).toBeLessThan(0.15);
  });

  it("an fMP4 (CMAF) video's renditions are remuxed from its init and media segments, in sync", async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 3, audio: true });
    const id = await uploadReady(t, clip, {
      title: "cmaf",
      segmentFormat: "FMP4",
      staticRenditions: ["HIGHEST", "AUDIO"],
    });
    const video = await renditionsSettled(t, id);
    const byName = new Map(video.staticRenditions.map((r) => [r.name, r]));
    expect(byName.get("HIGHEST")).toMatchObject({ status: "READY", width: 640, height: 360, error: null });
    expect(byName.get("AUDIO")).toMatchObject({ status: "READY", error: null });
    for (const r of video.staticRenditions) {
      const bytes = Buffer.from(await (await fetch(`${t.url}${r.url}`)).arrayBuffer());
      const boxes = topLevelBoxes(bytes);
      expect(boxes.indexOf("moov")).toBeLessThan(boxes.indexOf("mdat"));
      const file = path.join(t.dataDir, `probe-cmaf-${r.name}`);
      await writeFile(file, bytes);
      const probe = await ffprobe(file);
      expect(Math.abs(Number(probe.format.duration) - 3)).toBeLessThan(0.15);
      expect(probe.streams.map((s: any) => s.codec_name).sort()).toEqual(
        r.name === "AUDIO" ? ["aac"] : ["aac", "h264"],
      );
      if (r.name === "HIGHEST") {
        // In sync: the MP4's audio starts as far from its video as the source's does (both at 0).
        expect(Math.abs((await firstPts(file, "a")) - (await firstPts(file, "v")))).toBeLessThan(0.05);
      }
    }
  });

  for (const segmentFormat of ["TS", "FMP4"] as const) {
    it(`${segmentFormat} rungs: a 12.000 s source gives MP4s and an M4A of 12.000 s whose streams start at 0 (the \
AAC priming trimmed by an edit list), in sync as in the HLS rungs`, async () => {
      const fps = 25;
      const clip = await makeClip({ width: 320, height: 180, seconds: 12, audio: true, fps });
      const source = await ffprobe(clip);
      const sourceSeconds = Number(source.streams.find((s: any) => s.codec_type === "video").duration);
      expect(sourceSeconds).toBe(12);
      const id = await uploadReady(t, clip, {
        title: `exact ${segmentFormat}`,
        segmentFormat,
        staticRenditions: ["HIGHEST", "LOW", "AUDIO"],
      });
      const video = await renditionsSettled(t, id);
      const frame = 1 / fps;
      const aacFrame = 1024 / 48_000;
      for (const r of video.staticRenditions) {
        expect(r.status, r.name).toBe("READY");
        const file = path.join(t.dataDir, `probe-exact-${segmentFormat}-${r.name}`);
        await writeFile(file, Buffer.from(await (await fetch(`${t.url}${r.url}`)).arrayBuffer()));
        const probe = await ffprobe(file);
        const format = { start: Number(probe.format.start_time), duration: Number(probe.format.duration) };
        const streams = probe.streams.map((s: any) => ({
          type: s.codec_type,
          start: Number(s.start_time),
          duration: Number(s.duration),
        }));
        const what = `${r.name}: ${JSON.stringify({ format, streams })}`;
        expect(Math.abs(format.start), what).toBeLessThan(0.001);
        expect(Math.abs(format.duration - sourceSeconds), what).toBeLessThan(r.name === "AUDIO" ? aacFrame : frame);
        for (const s of streams) {
          const within = s.type === "video" ? frame : aacFrame;
          expect(Math.abs(s.start), what).toBeLessThan(s.type === "video" ? 0.001 : aacFrame);
          expect(Math.abs(s.duration - sourceSeconds), what).toBeLessThan(within);
        }
        if (r.name !== "AUDIO") {
          // In sync: the first audio packet (the priming the edit list skips) lies as far before the
          // first frame as in the rungs, and the first frame is shown at 0.
          const hlsDir = path.join(t.dataDir, "videos", id, "hls");
          const rung = r.name === "HIGHEST" ? "180p" : "144p";
          const ext = segmentFormat === "TS" ? "ts" : "m4s";
          const rungFirst = async (name: string, stream: "v" | "a") => {
            const dir = path.join(hlsDir, name);
            if (segmentFormat === "TS") return firstPts(path.join(dir, `seg_00000.${ext}`), stream);
            const joined = path.join(t.dataDir, `probe-exact-${name}.mp4`);
            await writeFile(
              joined,
              Buffer.concat([
                await readFile(path.join(dir, "init.mp4")),
                await readFile(path.join(dir, `seg_00000.${ext}`)),
              ]),
            );
            return firstPts(joined, stream);
          };
          const hlsOffset = (await rungFirst("audio", "a")) - (await rungFirst(rung, "v"));
          expect(Math.abs(await firstPts(file, "v")), what).toBeLessThan(0.001);
          const mp4Offset = (await firstPts(file, "a")) - (await firstPts(file, "v"));
          expect(Math.abs(mp4Offset - hlsOffset), `hls ${hlsOffset} mp4 ${mp4Offset}`).toBeLessThan(0.001);
        }
      }
    });
  }

  /** A READY video with no audio and no renditions asked for, made once: the errors test ends it FAILED. */
  let silentVideo: Promise<string> | undefined;
  const silentId = () => {
    silentVideo ??= makeClip({ width: 320, height: 240, seconds: 2, audio: false }).then((clip) =>
      uploadReady(t, clip, { title: "later" }),
    );
    return silentVideo;
  };

  it(`asked for later on a READY video: one job however often it is asked; AUDIO without audio is SKIPPED; a \
rendition that fails leaves the video READY and is made again when asked`, async () => {
    const id = await silentId();
    expect((await t.gql(VIDEO, { id })).data.video!.staticRenditions).toEqual([]);

    // The rung LOW is made from refers to a file outside the rung: the remux refuses it.
    const playlist = path.join(t.dataDir, "videos", id, "hls", "240p", "index.m3u8");
    const published = await readFile(playlist, "utf8");
    await writeFile(playlist, published.replace("seg_00000.ts", "../../source/upload"));
    const first = (await t.gql(REQUEST, { id, names: ["LOW", "AUDIO"] })).data.requestStaticRenditions;
    expect(first).toEqual({
      __typename: "RequestStaticRenditionsSuccess",
      video: {
        status: "READY",
        staticRenditions: [
          { name: "LOW", status: "PREPARING", error: null },
          { name: "AUDIO", status: "SKIPPED", error: "The video has no audio" },
        ],
      },
    });
    const again = (await t.gql(REQUEST, { id, names: ["LOW", "AUDIO"] })).data.requestStaticRenditions;
    expect(again.__typename).toBe("RequestStaticRenditionsSuccess");
    let video = await renditionsSettled(t, id);
    expect(video.status).toBe("READY");
    expect(video.staticRenditions).toEqual([
      expect.objectContaining({ name: "LOW", status: "FAILED", url: null, error: expect.stringMatching(/240p/) }),
      expect.objectContaining({ name: "AUDIO", status: "SKIPPED" }),
    ]);
    expect(video.jobs.edges.map((e) => e.node.kind)).toEqual(["STATIC_RENDITIONS", "TRANSCODE"]);

    await writeFile(playlist, published);
    // Asked twice at once: the video's lock lets one of them queue the job.
    const twice = await Promise.all([
      t.gql(REQUEST, { id, names: ["LOW"] }),
      t.gql(REQUEST, { id, names: ["LOW", "AUDIO"] }),
    ]);
    expect(twice.map((r) => r.data.requestStaticRenditions.__typename)).toEqual([
      "RequestStaticRenditionsSuccess",
      "RequestStaticRenditionsSuccess",
    ]);
    video = await renditionsSettled(t, id);
    expect(video.staticRenditions[0]).toMatchObject({ name: "LOW", status: "READY", width: 320, height: 240 });
    expect(video.jobs.edges.map((e) => [e.node.kind, e.node.status])).toEqual([
      ["STATIC_RENDITIONS", "SUCCEEDED"],
      ["STATIC_RENDITIONS", "SUCCEEDED"],
      ["TRANSCODE", "SUCCEEDED"],
    ]);
    const probe = await ffprobeBytes(
      Buffer.from(await (await fetch(`${t.url}${video.staticRenditions[0]!.url}`)).arrayBuffer()),
    );
    expect(probe.streams.map((s: any) => s.codec_name)).toEqual(["h264"]);
    expect(Math.abs(Number(probe.format.duration) - 2)).toBeLessThan(0.15);
  });

  it("a SIGNED video's renditions need the token; another tenant can neither ask for them nor see them", async () => {
    const clip = await makeClip({ width: 320, height: 240, seconds: 2, audio: true });
    const id = await uploadReady(t, clip, { title: "private", playbackPolicy: "SIGNED", staticRenditions: ["AUDIO"] });
    const { staticRenditions } = await renditionsSettled(t, id);
    const [audio] = staticRenditions;
    expect(audio).toMatchObject({ name: "AUDIO", status: "READY" });
    expect(audio!.url).toMatch(/\?token=/);
    expect((await fetch(`${t.url}${audio!.url}`)).status).toBe(200);
    const ranged = await fetch(`${t.url}${audio!.url}`, { headers: { range: "bytes=0-9" } });
    expect(ranged.status).toBe(206);
    expect((await fetch(`${t.url}${audio!.url!.replace(/\?.*$/, "")}`)).status).toBe(403);
    expect((await fetch(`${t.url}${audio!.downloadUrl!.replace(/token=[^&]*&?/, "")}`)).status).toBe(403);

    const b = `Bearer ${keyB}`;
    expect((await t.gql(REQUEST, { id, names: ["HIGHEST"] }, b)).data.requestStaticRenditions).toEqual({
      __typename: "NotFoundError",
      id,
      message: expect.any(String),
    });
    expect((await t.gql(VIDEO, { id }, b)).data.video).toBeNull();
    expect((await t.gql(VIDEO, { id })).data.video!.staticRenditions.map((r) => r.name)).toEqual(["AUDIO"]);
  });

  it("errors are union members: no names, an unknown video, a FAILED video", async () => {
    // The video the test above asked renditions of: any READY video will do, and this one is last.
    const id = await silentId();
    expect((await t.gql(REQUEST, { id, names: [] })).data.requestStaticRenditions).toEqual({
      __typename: "ValidationError",
      field: "names",
      message: "Name at least one rendition",
    });
    expect((await t.gql(REQUEST, { id: "not-a-uuid", names: ["LOW"] })).data.requestStaticRenditions.__typename).toBe(
      "NotFoundError",
    );
    const db = new pg.Client({ connectionString: t.database.url });
    await db.connect();
    await db.query(`UPDATE "Video" SET status = 'FAILED' WHERE id = $1`, [id]);
    await db.end();
    expect((await t.gql(REQUEST, { id, names: ["LOW"] })).data.requestStaticRenditions).toEqual({
      __typename: "ValidationError",
      field: "videoId",
      message: expect.stringMatching(/FAILED/),
    });
    // A name StaticRenditionName does not have, sent on purpose: the API refuses the variable.
    const unknown = await t.gql(REQUEST, { id, names: ["ORIGINAL"] as never });
    expect(unknown.errors?.[0]?.message).toMatch(/ORIGINAL/);
  });
});

let probed = 0;
/** ffprobe of a downloaded file's bytes (written beside the other test files). */
async function ffprobeBytes(bytes: Buffer): Promise<any> {
  const file = path.join(tmpdir(), `static-rendition-${process.pid}-${probed++}.mp4`);
  await writeFile(file, bytes);
  try {
    return await ffprobe(file);
  } finally {
    await rm(file, { force: true });
  }
}
