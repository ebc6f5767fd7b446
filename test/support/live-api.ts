import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import type { liveBroadcasts, liveIngestBytes, liveIngestClosed } from "../../src/metrics.ts";
import { parsePlaylist } from "../../src/shared/hls-playlists.ts";
import { startTestApp, type TestApp } from "./app.ts";
import { ADMIN_AUTH } from "./auth.ts";
import { createTestDatabase, queryDatabase, type TestDatabase } from "./db.ts";
import {
  type Checked,
  type DataOf,
  expectTypename,
  type GraphqlAnswer,
  graphql,
  type Operation,
  postGraphql,
  type VariablesFor,
  type VariablesOf,
} from "./graphql.ts";
import { killPublishersOnAir, publishUntilStopped } from "./live-publisher.ts";
import { workersReported } from "./live-slots.ts";
import { listProcesses } from "./process-scan.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses } from "./processes.ts";
import { waitFor } from "./wait-for.ts";

/** An API to ask GraphQL of: a test app, or `liveApi`'s process (both answer `{ data, errors }`). */
interface GraphqlApi {
  gql<D extends Operation>(operation: D & Checked<D>, variables?: VariablesFor<D>): Promise<GraphqlAnswer<DataOf<D>>>;
}

/** The sliding window viewers of a broadcast on air get on `startLiveTestApp`'s app (LIVE_DVR_WINDOW_SECONDS). */
export const DVR_WINDOW_SECONDS = 10;

/**
 * The app the live files that broadcast through one API run (live-broadcast, live-srt,
 * live-reconnects, live-stream): its worker, 1 s segments, a 3 s stall, a 10 s reconnect grace and
 * DVR window, with `srt` an SRT ingest too (a gateway process); every broadcast copies its top rung
 * (the publisher's 320x240, a keyframe a second). Resolves once its worker has heartbeated (its live
 * slots count).
 */
export async function startLiveTestApp({ srt = false } = {}): Promise<TestApp> {
  const t = await startTestApp({
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      // Room for a reconnect on a loaded machine: 0.6 s from the publisher's stop to its broadcast
      // LIVE again beside four x264 encodes, over 3 s once in a full run beside one.
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      LIVE_DVR_WINDOW_SECONDS: String(DVR_WINDOW_SECONDS),
      LIVE_SRT_PORT: srt ? "0" : "off",
    },
    workerEnv: { LIVE_PASSTHROUGH: "true" },
  });
  await workersReported(t);
  return t;
}

const STREAM_STATE = graphql(`query ($id: ID!) { liveStream(id: $id) {
  id status ingestUrl lastError streamKeyHint disabled
  activeVideo { id status source duration playbackUrl posterUrl } } }`);

/** A live stream's state and its broadcast's video (none: null), as `api` answers it. */
export async function streamState(api: GraphqlApi, id: string) {
  const res = await api.gql(STREAM_STATE, { id });
  expect(res.errors).toBeUndefined();
  return res.data.liveStream!;
}

/**
 * What the live tests that run API processes on one data dir ask of an instance: GraphQL with the
 * test admin key, a stream's state, and a publisher on its RTMP ingest, returned once the broadcast
 * is LIVE with `segments` more segments published (of its video so far, when the publisher comes
 * back to a broadcast on air).
 */
export function liveApi<T extends { url: string }>(api: T, dataDir: string) {
  const gql = <D extends Operation>(operation: D & Checked<D>, variables: VariablesFor<D> = {} as VariablesFor<D>) =>
    postGraphql(api.url, operation, variables, ADMIN_AUTH.authorization);
  const stream = (id: string) => streamState({ gql }, id);
  const publish = async (id: string, key: string, segments = 3) => {
    const { ingestUrl, activeVideo } = await stream(id);
    const published = activeVideo ? (await topSegments(dataDir, activeVideo.id)).length : 0;
    const publisher = publishUntilStopped(`${ingestUrl.replace("localhost", "127.0.0.1")}/${key}`);
    await expect.poll(async () => (await stream(id)).status, { timeout: 45_000, interval: 250 }).toBe("LIVE");
    const videoId: string = (await stream(id)).activeVideo!.id;
    const base = videoId === activeVideo?.id ? published : 0;
    await expect
      .poll(async () => (await topSegments(dataDir, videoId)).length, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(base + segments);
    return { publisher, videoId };
  };
  return Object.assign(api, { gql, stream, publish });
}

const CREATE_LIVE_STREAM = graphql(`
  mutation ($input: CreateLiveStreamInput) {
    createLiveStream(input: $input) {
      __typename
      ... on LiveStreamWithKey { streamKey srtPassphrase srtUrl liveStream { id status ingestUrl streamKeyHint } }
    }
  }`);

/**
 * A live stream made through `api` (`input`: more of CreateLiveStreamInput), IDLE, with its key, its
 * SRT passphrase and its addresses. Published on loopback only: the URLs say localhost, the
 * publisher connects to 127.0.0.1 (as returned here).
 */
export async function createLiveStreamWithKey(
  api: GraphqlApi,
  title: string,
  input: Omit<VariablesOf<typeof CREATE_LIVE_STREAM>["input"] & {}, "title"> = {},
): Promise<{ id: string; key: string; ingestUrl: string; srtPassphrase: string; srtUrl: string | null }> {
  const res = await api.gql(CREATE_LIVE_STREAM, { input: { title, ...input } });
  expect(res.errors).toBeUndefined();
  const { streamKey, srtPassphrase, srtUrl, liveStream } = expectTypename(
    res.data.createLiveStream,
    "LiveStreamWithKey",
  );
  expect(liveStream.status).toBe("IDLE");
  expect(streamKey.endsWith(liveStream.streamKeyHint)).toBe(true);
  expect(srtPassphrase).toMatch(/^[A-Za-z0-9_-]{32}$/);
  return {
    id: liveStream.id,
    key: streamKey,
    ingestUrl: liveStream.ingestUrl.replace("localhost", "127.0.0.1"),
    srtPassphrase,
    srtUrl: srtUrl?.replace("localhost", "127.0.0.1") ?? null,
  };
}

/** A live metric's value in this process for one ingest protocol (and other labels); 0 where it has none yet. */
export async function byProtocol(
  metric: typeof liveIngestBytes | typeof liveBroadcasts | typeof liveIngestClosed,
  protocol: "rtmp" | "srt" | "relay",
  labels: Record<string, string> = {},
): Promise<number> {
  const values = (await metric.get()).values as { value: number; labels: Record<string, string | number> }[];
  const wanted = { protocol, ...labels };
  return values.find((v) => Object.entries(wanted).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

/**
 * The moment a live stream's publisher goes (DISCONNECTED), watched from now while it still
 * broadcasts, so that the reconnect after it comes within the grace; a rejection is handled
 * where it is awaited.
 */
export function disconnectOf(api: GraphqlApi, id: string): Promise<unknown> {
  const watched = waitFor(
    "the disconnect",
    () => streamState(api, id),
    (s) => s.status === "DISCONNECTED",
    20_000,
  );
  watched.catch(() => {});
  return watched;
}

/** The publisher's clean end, then its stream ENDED with a READY recording about `seconds` long. */
export async function expectRecording(
  api: GraphqlApi,
  streamId: string,
  publisher: { exited: Promise<number | null> },
  seconds: number,
) {
  expect(await publisher.exited).toBe(0);
  const ended = await waitFor(
    "the recording",
    () => streamState(api, streamId),
    (s) => s.status === "ENDED",
  );
  expect(ended.lastError).toBeNull();
  expect(ended.activeVideo!.status).toBe("READY");
  expect(ended.activeVideo!.duration).toBeGreaterThan(seconds - 0.5);
  expect(ended.activeVideo!.duration).toBeLessThan(seconds + 1.5);
  return ended;
}

/** A URL's body, answered 200. */
export async function text(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return res.text();
}

/** The ffmpeg encoding `videoId`'s broadcast on this machine: the process reading its feed (by its command line). */
export function encoderOf(videoId: string): number | undefined {
  return listProcesses()
    .filter((p) => p.command === "ffmpeg")
    .find((p) => readFileSync(`/proc/${p.pid}/cmdline`, "utf8").includes(`/live/v1/feeds/${videoId}`))?.pid;
}

/** The seconds of media a playlist's text lists (its #EXTINF lines). */
export const durationOf = (playlist: string) =>
  playlist
    .split("\n")
    .filter((line) => line.startsWith("#EXTINF:"))
    .reduce((sum, line) => sum + Number.parseFloat(line.slice("#EXTINF:".length)), 0);

/** The top rung's playlist as storage in `dataDir` holds it (the test publishers' 320x240: 240p), or "". */
export const topPlaylist = (dataDir: string, videoId: string) =>
  readFile(path.join(dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");

/**
 * The pictures the top rung's playlist in storage decodes to (ffprobe counts them, every segment
 * of every encode): a recording measured from outside, against the frames a publisher sent.
 */
export async function topPictures(dataDir: string, videoId: string): Promise<number> {
  const { stdout } = await promisify(execFile)("ffprobe", [
    ...["-v", "error", "-select_streams", "v:0", "-count_frames"],
    ...["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"],
    path.join(dataDir, "videos", videoId, "hls", "240p", "index.m3u8"),
  ]);
  // The stream is printed once under the playlist's program and once on its own.
  return Number(stdout.trim().split("\n")[0]);
}

/** The segments a playlist's text lists (their URIs). */
export const segmentsOf = (playlist: string) => playlist.split("\n").filter((l) => l.startsWith("seg_"));

/** The top rung's segments as its playlist in storage lists them. */
export async function topSegments(dataDir: string, videoId: string): Promise<string[]> {
  return segmentsOf(await topPlaylist(dataDir, videoId));
}

/** Seconds of media the top rung's playlist lists. */
export async function topSeconds(dataDir: string, videoId: string): Promise<number> {
  return (parsePlaylist(await topPlaylist(dataDir, videoId)).segments ?? []).reduce((sum, s) => sum + s.duration, 0);
}

/**
 * The publisher stopped and the stream ENDED: one video, READY, its top rung's playlist `before`'s
 * segments then one discontinuity, ended. Returns the stream as it ended and the seconds the last
 * publisher sent.
 */
export async function expectOneRecording(
  api: ReturnType<typeof liveApi>,
  where: { dataDir: string; databaseUrl: string },
  streamId: string,
  videoId: string,
  before: { segments: string[] },
  publisher: { stop(): Promise<number> },
) {
  const sent = await publisher.stop();
  await expect.poll(async () => (await api.stream(streamId)).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
  const ended = await api.stream(streamId);
  expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });
  const { rows } = await queryDatabase(where.databaseUrl, `SELECT id FROM "Video" WHERE "liveStreamId" = $1`, [
    streamId,
  ]);
  expect(rows).toHaveLength(1);
  expect((await topSegments(where.dataDir, videoId)).slice(0, before.segments.length)).toEqual(before.segments);
  const playlist = await topPlaylist(where.dataDir, videoId);
  expect(playlist.split("\n").filter((l) => l === "#EXT-X-DISCONTINUITY")).toHaveLength(1);
  expect(playlist).toContain("#EXT-X-ENDLIST");
  return { ended, sent };
}

/**
 * A live deployment of processes for one test file (live-crash, live-deploy): its own database and
 * data dir, made before its tests and removed after them with every process it started; a publisher
 * left on air by a failed test is killed after it. Call it at the file's top level (it registers the
 * file's hooks). `startApi` starts an API instance as `npm start` runs it on them (RTMP only, 1 s
 * segments, the top rung copied, no Manim test render by its own worker; `env` adds to or overrides
 * that), as `liveApi`; `startWorker` a worker process of its own serving `cpu,live`, reporting
 * progress every 250 ms and heartbeating every 2 s.
 */
export function liveDeployment(name: string) {
  let db: TestDatabase | undefined;
  let dataDir: string | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), `videograph-${name}-`));
  });
  afterAll(async () => {
    await stopAllProcesses();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  afterEach(killPublishersOnAir);
  const made = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the live deployment is made in beforeAll");
    return value;
  };
  const deployment = {
    get db(): TestDatabase {
      return made(db);
    },
    get dataDir(): string {
      return made(dataDir);
    },
    sql: async (text: string, values: unknown[] = []) => (await queryDatabase(deployment.db.url, text, values)).rows,
    async startApi(apiName: string, env: Record<string, string> = {}) {
      const api = await startApiProcess(apiName, {
        DATABASE_URL: deployment.db.url,
        DATA_DIR: deployment.dataDir,
        LIVE_SRT_PORT: "off",
        LIVE_SEGMENT_SECONDS: "1",
        LIVE_PASSTHROUGH: "true",
        // An instance's own worker (LOCAL_WORKER) would otherwise test-render Manim: seconds of CPU
        // for a capability no live test uses.
        WORKER_DETECT_MANIM: "false",
        ...env,
      });
      return liveApi(api, deployment.dataDir);
    },
    startWorker: (id: string, env: Record<string, string> = {}) =>
      startWorkerProcess(id, {
        DATABASE_URL: deployment.db.url,
        DATA_DIR: deployment.dataDir,
        WORKER_CAPABILITIES: "cpu,live",
        LIVE_PASSTHROUGH: "true",
        PROGRESS_INTERVAL_MS: "250",
        HEARTBEAT_INTERVAL_SECONDS: "2",
        ...env,
      }),
  };
  return deployment;
}
