import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "vitest";
import { parsePlaylist } from "../../src/shared/hls-playlists.ts";
import type { Client } from "graphql-ws";
import { collectSubscription, gqlAt, type TestApp } from "./app.ts";
import { ADMIN_AUTH } from "./auth.ts";
import {
  type Checked,
  expectTypename,
  graphql,
  type Operation,
  operationText,
  type ResultOf,
  type VariablesFor,
  type VariablesOf,
} from "./graphql.ts";
import { expectMeasuredVariants } from "./media-checks.ts";

const run = promisify(execFile);
const RESUMABLE_CHUNK = 256 * 1024;

/**
 * The tests' createUpload, with any of CreateUploadInput's fields: the outcome's type name, the video,
 * its upload URL and when it expires, or the refusal's message. `createUpload` below sends it; a test
 * that checks a refusal or another caller's answer sends it itself (`{ input: { title } }`).
 */
export const CREATE_UPLOAD = graphql(`
  mutation CreateUpload($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl expiresAt video { id status } }
      ... on Error { message }
    } }`);
const FINAL_STATE = graphql(`
  subscription($id: ID!) { videoEvents(videoId: $id) { video { id status error playable } } }`);

/** CreateUploadInput's fields but the title. */
type UploadInput = Omit<VariablesOf<typeof CREATE_UPLOAD>["input"], "title">;

/** A video as the last event of its `videoEvents` subscription left it. */
export interface FinalVideo {
  id: string;
  status: string;
  error: string | null;
  playable: boolean;
}

/**
 * Creates a video waiting for its upload (with `input`'s other fields of CreateUploadInput) on a test
 * app, or on the API at a URL, as the admin key unless `authorization` says otherwise; returns its
 * id, its signed upload URL (relative) and when that expires.
 */
export async function createUpload(
  api: TestApp | string,
  title: string,
  input: UploadInput = {},
  authorization?: string,
): Promise<{ id: string; uploadUrl: string; expiresAt: string }> {
  const variables = { input: { ...input, title } };
  const data =
    typeof api === "string"
      ? await gqlAt(api, CREATE_UPLOAD, variables)
      : await createdBy(api, variables, authorization);
  const created = expectTypename(data.createUpload, "CreateUploadSuccess");
  return { id: created.video.id, uploadUrl: created.uploadUrl, expiresAt: created.expiresAt };
}

/**
 * `createUpload` on the API at `url`, asked again every 250 ms until it succeeds (the API's database
 * coming back) within `timeout` ms.
 */
export async function createUploadOnceAnswered(url: string, title: string, timeout: number) {
  let created: Awaited<ReturnType<typeof createUpload>> | undefined;
  await expect
    .poll(async () => (created ??= (await createUpload(url, title).catch(() => null)) ?? undefined), {
      timeout,
      interval: 250,
    })
    .toBeTruthy();
  return created!;
}

async function createdBy(t: TestApp, variables: VariablesOf<typeof CREATE_UPLOAD>, authorization?: string) {
  const { data, errors } = await t.gql(CREATE_UPLOAD, variables, authorization);
  expect(errors).toBeUndefined();
  return data;
}

/**
 * Subscribes to `videoEvents` now (as the admin key unless `authorization` says otherwise) and
 * resolves with the terminal state (READY, FAILED, CANCELED) the subscription ends on.
 */
export async function finalState(t: TestApp, id: string, authorization?: string): Promise<FinalVideo> {
  const client = t.wsClient(authorization);
  const events = await collectSubscription(client, FINAL_STATE, { id }).done;
  return events.at(-1)!.videoEvents.video;
}

/** Uploads `bytes` through an upload URL in one PUT, as a CMS does, and waits for the end state. */
export async function uploadAndWait(t: TestApp, bytes: Uint8Array<ArrayBuffer>, title = "upload"): Promise<FinalVideo> {
  const { id, uploadUrl } = await createUpload(t, title);
  const final = finalState(t, id);
  const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: bytes });
  expect(res.status).toBe(200);
  return final;
}

// The operations front ends and CMSs already send, unchanged.
const CREATE_UPLOAD_AS_CLIENTS_SEND = graphql(`
  mutation CreateUpload($title: String!) {
    createUpload(input: { title: $title }) {
      __typename
      ... on CreateUploadSuccess { uploadUrl video { id status } }
      ... on Error { message }
    } }`);
const VIDEO_EVENTS = graphql(`
  subscription VideoEvents($id: ID!) {
    videoEvents(videoId: $id) {
      __typename
      video { id status playable }
      ... on VariantProgressEvent { variant { name height status progress } fps speed etaSeconds }
    } }`);
const VIDEO = graphql(`
  query Video($id: ID!) {
    video(id: $id) {
      id status playable duration width height playbackUrl
      variants { name width height bandwidth peakBitRate averageBitRate status progress playlistUrl }
      jobs(first: 10) { edges { node { id kind status attempt progress error } } }
    } }`);

/**
 * The foundation flow through the public API only, with the operations front ends and CMSs send:
 * createUpload, a chunked PUT, the videoEvents subscription over graphql-ws, the Video query,
 * then the published HLS itself. Asserts READY with >= 5 rungs, top rung at the source height,
 * playable before READY, per-variant progress, VOD playlists and segments that decode.
 */
export async function uploadClipAndCheckLadder(t: TestApp, clip: string): Promise<void> {
  const created = await t.gql(CREATE_UPLOAD_AS_CLIENTS_SEND, { title: "8 s 720p" });
  expect(created.errors).toBeUndefined();
  const { uploadUrl, video } = expectTypename(created.data.createUpload, "CreateUploadSuccess");
  expect(video.status).toBe("WAITING_FOR_UPLOAD");

  const sub = collectSubscription(t.wsClient(), VIDEO_EVENTS, { id: video.id });

  // Upload in two chunks, as a resumable client does (GCS takes chunks in multiples of 256 KiB).
  const bytes = await readFile(clip);
  const half = Math.floor(bytes.length / 2 / RESUMABLE_CHUNK) * RESUMABLE_CHUNK;
  expect(half).toBeGreaterThan(0);
  const target = new URL(uploadUrl, t.url);
  const first = await fetch(target, {
    method: "PUT",
    body: bytes.subarray(0, half),
    headers: { "content-range": `bytes 0-${half - 1}/${bytes.length}` },
  });
  expect(first.status).toBe(308);
  const last = await fetch(target, {
    method: "PUT",
    body: bytes.subarray(half),
    headers: { "content-range": `bytes ${half}-${bytes.length - 1}/${bytes.length}` },
  });
  expect([200, 201]).toContain(last.status);

  const events = (await sub.done).map((e) => e.videoEvents);
  const statuses = events.map((e) => e.video.status);
  expect(statuses[0]).toBe("WAITING_FOR_UPLOAD");
  expect(statuses.at(-1)).toBe("READY");
  expect(statuses).toContain("PROCESSING");

  // Playable while still processing: playback can start long before the job ends.
  const playableAt = events.findIndex((e) => e.video.playable);
  expect(playableAt).toBeGreaterThan(-1);
  expect(events[playableAt]!.video.status).toBe("PROCESSING");

  const progress = events.filter((e) => e.__typename === "VariantProgressEvent");
  expect(progress.length).toBeGreaterThan(0);
  const midway = progress.filter((e) => e.variant!.progress > 0 && e.variant!.progress < 1);
  expect(midway.length).toBeGreaterThan(0);
  expect(new Set(progress.map((e) => e.variant!.name)).size).toBeGreaterThanOrEqual(2);
  for (const e of progress) expect(e.variant!.status).toBe("ENCODING");
  // fps, speed and an ETA from the first segments on: ffmpeg prints no status line until its
  // storyboard's first sheet is full, so before that they come from what the run published.
  const figures = (e: (typeof progress)[number]) => (e.fps ?? 0) > 0 && (e.speed ?? 0) > 0 && e.etaSeconds !== null;
  expect(progress.some((e) => e.variant!.progress < 0.5 && figures(e))).toBe(true);

  const result = (await t.gql(VIDEO, { id: video.id })).data.video!;
  expect(result.status).toBe("READY");
  expect(result.playable).toBe(true);
  expect(result.width).toBe(1280);
  expect(result.height).toBe(720);
  expect(result.duration).toBeCloseTo(8, 0);
  expect(result.playbackUrl).toBe(`/media/videos/${video.id}/hls/master.m3u8`);
  expect(result.jobs.edges).toHaveLength(1);
  expect(result.jobs.edges[0]!.node).toMatchObject({
    kind: "TRANSCODE",
    status: "SUCCEEDED",
    attempt: 1,
    progress: 1,
    error: null,
  });

  const videoRungs = result.variants.filter((v) => v.height !== null);
  expect(videoRungs.length).toBeGreaterThanOrEqual(5);
  expect(Math.max(...videoRungs.map((v) => v.height!))).toBe(720);
  for (const v of result.variants) {
    expect(v.status).toBe("READY");
    expect(v.progress).toBe(1);
    if (v.height !== null) expect(v.height).toBeLessThanOrEqual(720);
  }

  // The master lists every video rung; every media playlist is VOD and its segments decode.
  const masterRes = await fetch(`${t.url}${result.playbackUrl}`);
  expect(masterRes.headers.get("content-type")).toBe("application/vnd.apple.mpegurl");
  const master = parsePlaylist(await masterRes.text());
  expect(master.playlists!.length).toBe(videoRungs.length);
  // READY: each variant states what its segments carry (the worker's last master), under the
  // ladder's bound it declared while it encoded (Variant.bandwidth), its average under its peak.
  for (const variant of master.playlists!) {
    const rung = result.variants.find((v) => `${v.name}/index.m3u8` === variant.uri)!;
    const peak = variant.attributes.BANDWIDTH!;
    // m3u8-parser keeps AVERAGE-BANDWIDTH, which it does not know, as the text it read.
    const average = Number((variant.attributes as Record<string, unknown>)["AVERAGE-BANDWIDTH"]);
    expect(peak, variant.uri).toBeLessThan(rung.bandwidth);
    expect(average, variant.uri).toBeGreaterThan(0);
    expect(average, variant.uri).toBeLessThanOrEqual(peak);
  }
  // And each variant says what its own rendition carries (peakBitRate, averageBitRate).
  await expectMeasuredVariants(t.url, result.variants);
  for (const v of result.variants) {
    const text = await (await fetch(`${t.url}${v.playlistUrl}`)).text();
    expect(text.trimEnd().endsWith("#EXT-X-ENDLIST")).toBe(true);
    const playlist = parsePlaylist(text);
    expect(playlist.segments!.length).toBeGreaterThanOrEqual(3);
    const total = playlist.segments!.reduce((s, seg) => s + seg.duration, 0);
    expect(total).toBeGreaterThan(7.5);
    const segUrl = new URL(playlist.segments![1]!.uri, `${t.url}${v.playlistUrl}`);
    const seg = await fetch(segUrl);
    expect(seg.status).toBe(200);
    const file = path.join(t.dataDir, `check-${v.name}.ts`);
    await writeFile(file, Buffer.from(await seg.arrayBuffer()));
    const { stderr } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
    expect(stderr).toBe("");
  }
}

const EVENT_TYPES = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename } }`);

/** Resolves at the first VariantProgressEvent of a video: its encode is under way. */
function firstProgress(client: Client, videoId: string): Promise<void> {
  return new Promise((resolve) => {
    client.subscribe<ResultOf<typeof EVENT_TYPES>>(
      { query: operationText(EVENT_TYPES), variables: { id: videoId } },
      {
        next: (m) => m.data?.videoEvents.__typename === "VariantProgressEvent" && resolve(),
        error: () => {},
        complete: () => {},
      },
    );
  });
}

/**
 * Creates an upload on the API at `url`, PUTs `clip` to it and resolves once the worker is
 * encoding (the first VariantProgressEvent); `final` collects the video's `events` subscription
 * until it ends.
 */
export async function uploadUntilEncoding<D extends Operation>(
  url: string,
  client: Client,
  clip: string,
  title: string,
  events: D & Checked<D>,
) {
  const { id, uploadUrl } = await createUpload(url, title);
  const started = firstProgress(client, id);
  const final = collectSubscription<never, D>(client, events, { id } as VariablesFor<D>);
  const res = await fetch(`${url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) });
  if (res.status !== 200) throw new Error(`upload answered ${res.status}`);
  await started;
  return { id, final };
}

const UPLOAD_ASSET = graphql(`
  mutation($f: File!, $kind: AssetKind!) { uploadAsset(file: $f, kind: $kind) {
    __typename
    ... on UploadAssetSuccess { asset { id kind name size contentType } }
    ... on ValidationError { field message }
  } }`);

/**
 * uploadAsset as a browser sends it: a GraphQL multipart request with the file (its `f` variable
 * is the file's slot, null in `operations`); the mutation's answer.
 */
export async function uploadAsset(
  t: TestApp,
  bytes: Uint8Array,
  name: string,
  type: string,
  kind: VariablesOf<typeof UPLOAD_ASSET>["kind"],
  authorization = ADMIN_AUTH.authorization,
) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query: operationText(UPLOAD_ASSET), variables: { f: null, kind } }));
  form.append("map", JSON.stringify({ 0: ["variables.f"] }));
  form.append("0", new Blob([bytes as Uint8Array<ArrayBuffer>], { type }), name);
  const res = await fetch(`${t.url}/graphql`, { method: "POST", body: form, headers: { authorization } });
  return ((await res.json()) as { data: ResultOf<typeof UPLOAD_ASSET> }).data.uploadAsset;
}
