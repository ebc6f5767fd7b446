import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, type ResultOf, type VariablesOf } from "./support/graphql.ts";
import { fixturesDir, runFfmpeg } from "./support/media-fixtures.ts";
import { createUpload, uploadAsset } from "./support/uploads.ts";

const run = promisify(execFile);

// Its refusals' `field`, which the shared CREATE_UPLOAD (support/uploads.ts) does not ask for.
const CREATE_UPLOAD = graphql(`
  mutation($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl video { id } }
      ... on Error { message }
      ... on ValidationError { field }
    } }`);
const EVENTS = graphql(`
  subscription($id: ID!) { videoEvents(videoId: $id) {
    __typename video { status error playbackUrl }
    ... on RenderProgressEvent { description percent }
  } }`);
const CREATE_CLIP = graphql(`
  mutation($input: CreateClipInput!) {
    createClip(input: $input) { __typename ... on CreateClipSuccess { video { id } } ... on Error { message } } }`);
const VARIANTS = graphql(`
  query($id: ID!) { video(id: $id) {
    status segmentFormat staticRenditions { name } variants { name kind height playlistUrl }
    loudness { integratedLufs truePeakDb lra } watermark { position widthFraction margin marginUnit opacity }
  } }`);
/** A video as VARIANTS reads it back once it is READY, with the events it sent. */
type FinishedVideo = NonNullable<ResultOf<typeof VARIANTS>["video"]> & {
  id: string;
  events: ResultOf<typeof EVENTS>["videoEvents"][];
};

type Variant = FinishedVideo["variants"][number];

/**
 * A black 426x240 clip (two video rungs: as many as the watermark's checks read, and no more to encode)
 * with a 1 kHz tone at about −30 LUFS, as an mp4.
 */
async function makeToneClip(name: string, seconds: number): Promise<string> {
  const file = path.join(fixturesDir(), name);
  await runFfmpeg([
    ...["-f", "lavfi", "-i", `color=black:size=426x240:rate=25:duration=${seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=1000:sample_rate=48000:duration=${seconds}`],
    // The sine source is 1/8 full scale (about −21 LUFS in stereo); −9 dB takes it to about −30.
    ...["-af", "volume=-9dB", "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "192k"],
    ...["-shortest", "-y", file],
  ]);
  return file;
}

/** Integrated loudness (LUFS) of a file's audio, by ffmpeg's ebur128 filter. */
async function integratedLoudness(file: string): Promise<number> {
  const { stderr } = await run("ffmpeg", [
    "-hide_banner",
    "-nostats",
    "-i",
    file,
    "-vn",
    "-af",
    "ebur128",
    "-f",
    "null",
    "-",
  ]);
  const summary = stderr.slice(stderr.lastIndexOf("Summary:"));
  return Number(/I:\s+(-?[\d.]+) LUFS/.exec(summary)![1]);
}

describe("loudness normalization and a watermark, chosen at creation (public API, real worker)", () => {
  let t: TestApp;
  let tone: Buffer;
  let black: Buffer;
  let watermarkId: string;
  let otherTenantKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    tone = await readFile(await makeToneClip("tone.mp4", 6));
    black = await readFile(await makeToneClip("black.mp4", 2));
    const png = path.join(fixturesDir(), "white.png");
    await runFfmpeg(["-f", "lavfi", "-i", "color=white:size=64x64", "-frames:v", "1", "-y", png]);
    const uploaded = await uploadAsset(t, await readFile(png), "logo.png", "image/png", "WATERMARK");
    expect(uploaded).toMatchObject({ __typename: "UploadAssetSuccess", asset: { contentType: "image/png" } });
    watermarkId = expectTypename(uploaded, "UploadAssetSuccess").asset.id;
    otherTenantKey = await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b");
  });
  afterAll(() => t.stop());

  /** The watermark both tests draw: the asset across a fifth of the top right corner. */
  const topRightMark = () => ({
    assetId: watermarkId,
    position: "TOP_RIGHT" as const,
    widthFraction: 0.2,
    margin: 0,
    opacity: 1,
  });

  /** Creates a video with `options`, uploads `bytes` and returns its events once it ends. */
  async function transcode(bytes: Buffer, options: Parameters<typeof createUpload>[2]) {
    const { id, uploadUrl } = await createUpload(t, "media filters", options);
    const events = collectSubscription(t.wsClient(), EVENTS, { id }).done;
    const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(bytes) });
    expect(res.status).toBe(200);
    return finished(id, events);
  }

  let plainOnce: Promise<FinishedVideo> | undefined;
  /**
   * The tone clip transcoded without options, once for the file: the first two tests' baseline (its
   * audio untouched, its black picture without a mark).
   */
  const plainTone = () => {
    plainOnce ??= transcode(tone, {});
    return plainOnce;
  };

  /** Cuts a clip with `input`, and returns its events once it ends. */
  async function clip(input: VariablesOf<typeof CREATE_CLIP>["input"]) {
    const created = (await t.gql(CREATE_CLIP, { input })).data.createClip;
    const id = expectTypename(created, "CreateClipSuccess").video.id;
    return finished(id, collectSubscription(t.wsClient(), EVENTS, { id }).done);
  }

  /** The video once `events` end READY, as the API reads it back. */
  async function finished(id: string, events: Promise<ResultOf<typeof EVENTS>[]>): Promise<FinishedVideo> {
    const all = (await events).map((e) => e.videoEvents);
    expect(all.at(-1)!.video).toMatchObject({ status: "READY", error: null });
    const video = (await t.gql(VARIANTS, { id })).data.video!;
    return { ...video, id, events: all };
  }

  /**
   * A rung's segments, fetched through its playback URLs and joined into one file: MPEG-TS, or for
   * fMP4 segments the init segment (`#EXT-X-MAP`) and the media segments, one fragmented MP4.
   */
  async function rungFile(variant: Variant, name: string): Promise<string> {
    const playlistUrl = `${t.url}${variant.playlistUrl}`;
    const parser = new Parser();
    parser.push(await (await fetch(playlistUrl)).text());
    parser.end();
    const segments = parser.manifest.segments;
    const init = segments[0]?.map?.uri;
    const parts: Buffer[] = [];
    for (const uri of [...(init ? [init] : []), ...segments.map((s) => s.uri)]) {
      const res = await fetch(new URL(uri, playlistUrl));
      expect(res.status).toBe(200);
      parts.push(Buffer.from(await res.arrayBuffer()));
    }
    const file = path.join(fixturesDir(), `${name}.${init ? "mp4" : "ts"}`);
    await writeFile(file, Buffer.concat(parts));
    return file;
  }

  it("normalizes a −30 LUFS tone to −16 LUFS after a measuring step; without the option it is untouched", async () => {
    const normalized = await transcode(tone, { loudness: { integratedLufs: -16 } });
    expect(normalized.loudness).toEqual({ integratedLufs: -16, truePeakDb: -1.5, lra: 11 });
    expect(normalized.watermark).toBeNull();
    const steps = normalized.events.filter((e) => e.__typename === "RenderProgressEvent");
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.every((e) => e.description === "Measuring loudness")).toBe(true);
    expect(steps.at(-1)!.percent).toBe(100);
    const audio = normalized.variants.find((v) => v.kind === "AUDIO")!;
    const loud = await integratedLoudness(await rungFile(audio, "normalized-audio"));
    expect(Math.abs(loud - -16)).toBeLessThanOrEqual(1);

    const plain = await plainTone();
    expect(plain.loudness).toBeNull();
    expect(plain.events.some((e) => e.__typename === "RenderProgressEvent")).toBe(false);
    const untouched = await integratedLoudness(
      await rungFile(plain.variants.find((v) => v.kind === "AUDIO")!, "plain"),
    );
    expect(Math.abs(untouched - -30)).toBeLessThanOrEqual(1);
  });

  it("draws the watermark in its corner of every rung; without the option every corner stays black", async () => {
    const watermark = topRightMark();
    const marked = await transcode(black, { watermark });
    expect(marked.watermark).toEqual({
      position: "TOP_RIGHT",
      widthFraction: 0.2,
      margin: 0,
      marginUnit: "PERCENT",
      opacity: 1,
    });
    const videoRungs = marked.variants.filter((v) => v.kind === "VIDEO");
    expect(videoRungs.length).toBeGreaterThanOrEqual(2);
    for (const rung of videoRungs.slice(0, 2)) {
      const corners = await cornerLuma(await rungFile(rung, `marked-${rung.name}`));
      expect(corners.topRight, rung.name).toBeGreaterThan(200);
      expect(corners.topLeft, rung.name).toBeLessThan(40);
      expect(corners.bottomLeft, rung.name).toBeLessThan(40);
      expect(corners.bottomRight, rung.name).toBeLessThan(40);
    }

    // The tone clip's picture is as black as this one's.
    const plain = await plainTone();
    const top = plain.variants.filter((v) => v.kind === "VIDEO")[0]!;
    const corners = await cornerLuma(await rungFile(top, "plain-video"));
    expect(Math.max(...Object.values(corners))).toBeLessThan(40);
  });

  it("a clip keeps its source's segment format, loudness and watermark unless it chooses otherwise", async () => {
    const watermark = topRightMark();
    const options = {
      segmentFormat: "FMP4" as const,
      loudness: { integratedLufs: -16 },
      watermark,
      staticRenditions: ["AUDIO" as const],
    };
    const source = await transcode(tone, options);
    expect(source).toMatchObject({ segmentFormat: "FMP4", staticRenditions: [{ name: "AUDIO" }] });

    // Left out: the source's, as the published clip shows (fMP4 segments, the mark, −16 LUFS); no static renditions.
    const inherited = await clip({ sourceVideoId: source.id, start: 1, end: 5 });
    expect(inherited).toMatchObject({ segmentFormat: "FMP4", staticRenditions: [] });
    expect(inherited.loudness).toEqual(source.loudness);
    expect(inherited.watermark).toEqual(source.watermark);
    const marked = await rungFile(inherited.variants.find((v) => v.kind === "VIDEO")!, "clip-inherited");
    expect(marked.endsWith(".mp4")).toBe(true);
    const corners = await cornerLuma(marked);
    expect(corners.topRight).toBeGreaterThan(200);
    expect(Math.max(corners.topLeft, corners.bottomLeft, corners.bottomRight)).toBeLessThan(40);
    const audio = inherited.variants.find((v) => v.kind === "AUDIO")!;
    expect(
      Math.abs((await integratedLoudness(await rungFile(audio, "clip-inherited-audio"))) - -16),
    ).toBeLessThanOrEqual(1);

    // Each chosen again: null is none, a value replaces the source's; static renditions are the clip's own.
    const own = await clip({
      sourceVideoId: source.id,
      start: 1,
      end: 5,
      segmentFormat: "TS",
      loudness: null,
      watermark: null,
      staticRenditions: ["AUDIO"],
    });
    expect(own).toMatchObject({ segmentFormat: "TS", loudness: null, watermark: null });
    expect(own.staticRenditions).toEqual([{ name: "AUDIO" }]);
    const plain = await rungFile(own.variants.find((v) => v.kind === "VIDEO")!, "clip-own");
    expect(plain.endsWith(".ts")).toBe(true);
    expect(Math.max(...Object.values(await cornerLuma(plain)))).toBeLessThan(40);
    const untouched = await integratedLoudness(
      await rungFile(own.variants.find((v) => v.kind === "AUDIO")!, "clip-own-audio"),
    );
    expect(Math.abs(untouched - -30)).toBeLessThanOrEqual(1);
  }, 300_000);

  it("refuses hostile options at creation with union errors", async () => {
    const create = async (options: Omit<VariablesOf<typeof CREATE_UPLOAD>["input"], "title">, authorization?: string) =>
      (await t.gql(CREATE_UPLOAD, { input: { title: "hostile", ...options } }, authorization)).data.createUpload;

    // Another tenant's asset is not found.
    const foreign = await create({ watermark: { assetId: watermarkId } }, `Bearer ${otherTenantKey}`);
    expect(foreign.__typename).toBe("NotFoundError");
    // An asset that is not an image.
    const wav = path.join(fixturesDir(), "ding.wav");
    await runFfmpeg(["-f", "lavfi", "-i", "sine=duration=0.2", "-y", wav]);
    const sound = await uploadAsset(t, await readFile(wav), "ding.wav", "audio/wav", "CORRECT_SOUND");
    expect(
      await create({ watermark: { assetId: expectTypename(sound, "UploadAssetSuccess").asset.id } }),
    ).toMatchObject({
      __typename: "ValidationError",
      field: "watermark.assetId",
    });
    // Out of range.
    for (const [options, field] of [
      [{ watermark: { assetId: watermarkId, opacity: 1.5 } }, "watermark.opacity"],
      [{ watermark: { assetId: watermarkId, widthFraction: 0 } }, "watermark.widthFraction"],
      [{ watermark: { assetId: watermarkId, margin: 30 } }, "watermark.margin"],
      [{ loudness: { integratedLufs: -80 } }, "loudness.integratedLufs"],
      [{ loudness: { truePeakDb: 3 } }, "loudness.truePeakDb"],
      [{ loudness: { lra: 0 } }, "loudness.lra"],
    ] as const) {
      expect(await create(options), field).toMatchObject({ __typename: "ValidationError", field });
    }

    // A watermark asset must be a PNG or JPEG by its bytes, and not a huge one.
    const notImage = await uploadAsset(t, new TextEncoder().encode("<svg/>"), "x.png", "image/png", "WATERMARK");
    expect(notImage).toMatchObject({ __typename: "ValidationError", field: "file" });
    const huge = path.join(fixturesDir(), "huge.png");
    await runFfmpeg(["-f", "lavfi", "-i", "color=white:size=5000x16", "-frames:v", "1", "-y", huge]);
    const tooLarge = await uploadAsset(t, await readFile(huge), "huge.png", "image/png", "WATERMARK");
    expect(tooLarge).toMatchObject({ __typename: "ValidationError", field: "file" });
    expect(expectTypename(tooLarge, "ValidationError").message).toMatch(/4096 pixels/);
    // A small image in front of a huge one: ffmpeg would decode both, so the file is not one image.
    const small = path.join(fixturesDir(), "small.png");
    await runFfmpeg(["-f", "lavfi", "-i", "color=white:size=16x16", "-frames:v", "1", "-y", small]);
    const appended = Buffer.concat([await readFile(small), await readFile(huge)]);
    const stacked = await uploadAsset(t, appended, "stacked.png", "image/png", "WATERMARK");
    expect(stacked).toMatchObject({ __typename: "ValidationError", field: "file" });
    expect(expectTypename(stacked, "ValidationError").message).toMatch(/one PNG or JPEG image, the whole file/);
  });
});

/**
 * The mean luma of each corner (a tenth of the width and height) of the file's first frame, decoded
 * by ffmpeg.
 */
async function cornerLuma(file: string) {
  const { stdout: size } = await run("ffprobe", [
    ...["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", file],
  ]);
  // MPEG-TS lists the stream once per program: the first line.
  const [width, height] = size.trim().split("\n")[0]!.split(",").map(Number) as [number, number];
  expect(width * height, `${file}: ${size}`).toBeGreaterThan(0);
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-i", file, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
    { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
  );
  expect(stdout.length).toBe(width * height);
  const mean = (x0: number, y0: number) => {
    const w = Math.floor(width / 10);
    const h = Math.floor(height / 10);
    let sum = 0;
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) sum += stdout[y * width + x]!;
    return sum / (w * h);
  };
  return {
    topLeft: mean(0, 0),
    topRight: mean(width - Math.floor(width / 10), 0),
    bottomLeft: mean(0, height - Math.floor(height / 10)),
    bottomRight: mean(width - Math.floor(width / 10), height - Math.floor(height / 10)),
  };
}
