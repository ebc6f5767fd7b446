import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { ListMultipartUploadsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { S3Storage } from "../src/storage/s3.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { forwardRequest } from "./support/cuttable-proxy.ts";
import { startMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { graphql } from "./support/graphql.ts";
import { uploadClipAndCheckLadder, createUpload } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const run = promisify(execFile);

const ADD_CAPTION = graphql(`
  mutation($input: AddCaptionInput!) { addCaption(input: $input) { __typename } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const URLS = graphql(
  `query($id: ID!) { video(id: $id) { status playbackUrl posterUrl variants { name playlistUrl } } }`,
);
const DELETE = graphql(
  `mutation($id: ID!) { deleteVideo(id: $id) { __typename ... on DeleteVideoSuccess { deletedVideoId } } }`,
);

interface Recorded {
  method: string;
  path: string;
  range: string | undefined;
}

/** A pass-through HTTP proxy in front of moto that records what the worker asks the bucket for. */
async function startRecordingProxy(target: string): Promise<{ url: string; requests: Recorded[]; server: Server }> {
  const upstream = new URL(target);
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method!, path: new URL(req.url!, "http://proxy").pathname, range: req.headers.range });
    forwardRequest(upstream, req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

describe("upload → HLS with STORAGE=s3 (moto's S3 server, real worker, presigned playback)", () => {
  let moto: MotoS3;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  let t: TestApp;
  let bucket: string;
  let storage: S3Storage;

  beforeAll(async () => {
    moto = await startMotoS3();
    const env = await moto.createBucket();
    bucket = env.S3_BUCKET!;
    proxy = await startRecordingProxy(moto.endpoint);
    t = await startTestApp({ env, workerEnv: { ...env, S3_ENDPOINT: proxy.url } });
    storage = t.app.services.storage as S3Storage;
  });
  afterAll(async () => {
    await t?.stop();
    proxy?.server.close();
  });

  const objectsUnder = async (prefix: string) =>
    (await storage.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents?.map(
      (o) => o.Key!,
    ) ?? [];

  async function uploadAndWait(clip: string, policy: "PUBLIC" | "SIGNED"): Promise<string> {
    const created = await createUpload(t, policy, { playbackPolicy: policy });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    return created.id;
  }

  it(`takes an 8-second 720p clip to READY through the bucket; the worker reads the source with \
Range requests`, async () => {
    const clip = await makeClip({ width: 1280, height: 720, seconds: 8, audio: true });
    await uploadClipAndCheckLadder(t, clip);

    const sourceReads = proxy.requests.filter(
      (r) => r.method === "GET" && /^\/[^/]+\/videos\/[^/]+\/source\/upload$/.test(r.path),
    );
    expect(sourceReads.length).toBeGreaterThan(0);
    // ffmpeg seeks in the source (its index) instead of the worker downloading it first.
    expect(sourceReads.some((r) => /^bytes=[1-9]\d*-/.test(String(r.range)))).toBe(true);
    // The media is in the bucket, not in the API's data dir.
    const videoId = sourceReads[0]!.path.split("/")[3]!;
    expect(await objectsUnder(`videos/${videoId}/hls/`)).toContain(`videos/${videoId}/hls/master.m3u8`);
  });

  it(`a SIGNED video plays through presigned URLs: playlists need a token, segments and poster come \
from the bucket`, async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 3, audio: true });
    const id = await uploadAndWait(clip, "SIGNED");
    const urls = (await t.gql(URLS, { id })).data.video!;
    expect(urls.playbackUrl).toMatch(/\/master\.m3u8\?token=/);

    expect((await fetch(`${t.url}${urls.playbackUrl!.split("?")[0]}`)).status).toBe(403);
    const master = await fetch(`${t.url}${urls.playbackUrl}`);
    expect(master.status).toBe(200);
    const child = (await master.text()).split("\n").find((l) => l && !l.startsWith("#"))!;
    expect(child).toMatch(/index\.m3u8\?token=/);
    const variantUrl = new URL(child, `${t.url}${urls.playbackUrl}`).href;
    const variant = await fetch(variantUrl);
    expect(variant.status).toBe(200);
    const segments = (await variant.text()).split("\n").filter((l) => l && !l.startsWith("#"));
    expect(segments.length).toBeGreaterThan(0);
    for (const segment of segments) {
      const url = new URL(segment);
      expect(url.origin).toBe(moto.endpoint);
      expect(url.pathname).toMatch(new RegExp(`^/${bucket}/videos/${id}/hls/`));
      expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
      expect(url.searchParams.has("token")).toBe(false);
    }
    const segment = await fetch(segments[0]!);
    expect(segment.status).toBe(200);
    expect(segment.headers.get("cache-control")).toMatch(/immutable/);
    const file = path.join(t.dataDir, "signed-segment.ts");
    await writeFile(file, Buffer.from(await segment.arrayBuffer()));
    expect((await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"])).stderr).toBe("");

    expect(new URL(urls.posterUrl!).origin).toBe(moto.endpoint);
    const poster = await fetch(urls.posterUrl!);
    expect(poster.status).toBe(200);
    expect(poster.headers.get("content-type")).toBe("image/jpeg");
    // A request for a segment at the API is redirected to the bucket.
    const redirect = await fetch(
      new URL(
        `/media/videos/${id}/hls/${segments[0]!.split(`/videos/${id}/hls/`)[1]!.split("?")[0]}` +
          `?token=${new URL(child, "http://x").searchParams.get("token")}`,
        t.url,
      ),
      { redirect: "manual" },
    );
    expect(redirect.status).toBe(302);
    expect(new URL(redirect.headers.get("location")!).origin).toBe(moto.endpoint);

    // A caption track: the master lists it; its playlist (made by the API) and its file (whose header the API
    // writes for the video's segments) come from the API, the file read from the bucket.
    const text = "WEBVTT\n\n00:00.500 --> 00:01.500\nHello\n";
    const added = await t.gql(ADD_CAPTION, { input: { videoId: id, language: "en", name: "English", text } });
    expect(added.data.addCaption.__typename).toBe("AddCaptionSuccess");
    const withCaption = await (await fetch(`${t.url}${urls.playbackUrl}`)).text();
    const subtitles = /TYPE=SUBTITLES,.*URI="([^"]+)"/.exec(withCaption)![1]!;
    const subtitlePlaylist = await fetch(new URL(subtitles, `${t.url}${urls.playbackUrl}`));
    expect(subtitlePlaylist.status).toBe(200);
    const vttUri = (await subtitlePlaylist.text()).split("\n").find((l) => l && !l.startsWith("#"))!;
    expect(vttUri).toMatch(/^track\.vtt\?token=/);
    const vttUrl = new URL(vttUri, subtitlePlaylist.url);
    expect(vttUrl.pathname).toMatch(new RegExp(`^/media/videos/${id}/captions/[\\w-]+/track\\.vtt$`));
    const stored = await storage.readText(`videos/${id}/captions/${vttUrl.pathname.split("/").at(-2)}/track.vtt`);
    expect(stored).toMatch(/^WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1026000,/);
    const vtt = await fetch(vttUrl);
    expect(vtt.headers.get("content-type")).toMatch(/^text\/vtt/);
    expect(await vtt.text()).toMatch(
      /^WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1026000,LOCAL:00:00:00\.000\n\n00:00:00\.500 --> /,
    );
  });

  it("deleteVideo removes every object of the video from the bucket, and leaves no unfinished upload", async () => {
    const clip = await makeClip({ width: 160, height: 90, seconds: 2, audio: false });
    const id = await uploadAndWait(clip, "PUBLIC");
    expect((await objectsUnder(`videos/${id}/`)).length).toBeGreaterThan(3);
    // And an upload that never finished: one 8 MiB part in a multipart upload, the rest held in a piece.
    const pending = await createUpload(t, "pending", { playbackPolicy: "PUBLIC" });
    const sent = 9 * 1024 * 1024;
    const res = await fetch(`${t.url}${pending.uploadUrl}`, {
      method: "PUT",
      body: new Uint8Array(sent),
      headers: { "content-range": `bytes 0-${sent - 1}/${2 * sent}` },
    });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe(`bytes=0-${sent - 1}`);
    expect(await objectsUnder(`videos/${pending.id}/`)).toEqual([
      `videos/${pending.id}/source/upload.part/${String(8 * 1024 * 1024).padStart(15, "0")}`,
    ]);
    const unfinished = await storage.client.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `videos/${pending.id}/` }),
    );
    expect(unfinished.Uploads?.map((u) => u.Key)).toEqual([`videos/${pending.id}/source/upload`]);

    for (const video of [id, pending.id]) {
      expect((await t.gql(DELETE, { id: video })).data.deleteVideo).toEqual({
        __typename: "DeleteVideoSuccess",
        deletedVideoId: video,
      });
      expect(await objectsUnder(`videos/${video}/`)).toEqual([]);
    }
    const uploads = await storage.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: "videos/" }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });
});
