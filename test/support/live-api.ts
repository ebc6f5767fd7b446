import { readFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "vitest";
import { parsePlaylist } from "../../src/shared/hls-playlists.ts";
import { TEST_ADMIN_KEY } from "./auth.ts";
import { queryDatabase } from "./db.ts";
import { publishUntilStopped } from "./live-publisher.ts";

/**
 * What the live tests that run API processes on one data dir ask of an instance: GraphQL with the
 * test admin key, a stream's state, and a publisher on its RTMP ingest, returned once the broadcast
 * is LIVE with `segments` more segments published (of its video so far, when the publisher comes
 * back to a broadcast on air).
 */
export function liveApi<T extends { url: string }>(api: T, dataDir: string) {
  const gql = async (query: string, variables: Record<string, unknown> = {}) =>
    (
      await fetch(`${api.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TEST_ADMIN_KEY}` },
        body: JSON.stringify({ query, variables }),
      })
    ).json();
  const stream = async (id: string) =>
    (
      await gql(`query ($id: ID!) { liveStream(id: $id) { status ingestUrl activeVideo { id status duration } } }`, {
        id,
      })
    ).data.liveStream;
  const publish = async (id: string, key: string, segments = 3) => {
    const { ingestUrl, activeVideo } = await stream(id);
    const published = activeVideo ? (await topSegments(dataDir, activeVideo.id)).length : 0;
    const publisher = publishUntilStopped(`${ingestUrl.replace("localhost", "127.0.0.1")}/${key}`);
    await expect.poll(async () => (await stream(id)).status, { timeout: 45_000, interval: 250 }).toBe("LIVE");
    const videoId: string = (await stream(id)).activeVideo.id;
    const base = videoId === activeVideo?.id ? published : 0;
    await expect
      .poll(async () => (await topSegments(dataDir, videoId)).length, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(base + segments);
    return { publisher, videoId };
  };
  return Object.assign(api, { gql, stream, publish });
}

/** A live stream made through `api`, with its key (`input`: more of CreateLiveStreamInput). */
export async function createLiveStreamWithKey(
  api: { gql(query: string, variables?: Record<string, unknown>): Promise<any> },
  title: string,
  input: Record<string, unknown> = {},
): Promise<{ id: string; key: string }> {
  const created = await api.gql(
    `mutation ($input: CreateLiveStreamInput) { createLiveStream(input: $input) { ... on LiveStreamWithKey { streamKey liveStream { id } } } }`,
    { input: { title, ...input } },
  );
  return { id: created.data.createLiveStream.liveStream.id, key: created.data.createLiveStream.streamKey };
}

/** The top rung's playlist as storage in `dataDir` holds it (the test publishers' 320x240: 240p), or "". */
export const topPlaylist = (dataDir: string, videoId: string) =>
  readFile(path.join(dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");

/** The top rung's segments as its playlist in storage lists them. */
export async function topSegments(dataDir: string, videoId: string): Promise<string[]> {
  return (await topPlaylist(dataDir, videoId)).split("\n").filter((l) => l.startsWith("seg_"));
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
