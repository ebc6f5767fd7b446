import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CaptionCatalog } from "../src/captions/subtitle-playlists.ts";
import { createLivePlaylists, deliveryDirectives } from "../src/http/live-playlists.ts";
import { handleMedia } from "../src/http/media.ts";
import type { PlaybackGuard } from "../src/http/playback-guard.ts";
import { PlaybackTokens } from "../src/http/playback-tokens.ts";
import { MEDIA_PATH_PREFIX } from "../src/storage/api-urls.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { UrlSigner } from "../src/storage/url-signer.ts";

/**
 * Blocking playlist reload (RFC 8216bis 6.2.5.2) on a live broadcast's rung playlists, through the
 * API's `/media/` route over HTTP, on local storage: the worker's writes are files written here.
 */

let root: string;
let server: Server;
let base: string;
/** Reads of stored playlists made for held requests, by key. */
const reads = new Map<string, number>();
/** Keys whose counted reads take half a second (a slow bucket). */
const slowReads = new Set<string>();
/** Videos the guard calls live broadcasts' (any other: a VOD). */
const liveVideos = new Set<string>();

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "videograph-live-playlists-"));
  const storage = new LocalStorage(root, {
    publicUrl: "",
    signer: new UrlSigner("s".repeat(32)),
    uploadUrlTtlSeconds: 60,
  });
  const guard: PlaybackGuard = {
    videoOf: async (videoId) => ({ policy: "PUBLIC", live: liveVideos.has(videoId), protection: null }),
    tokens: new PlaybackTokens("x".repeat(32), 60),
  };
  const noCaptions: CaptionCatalog = {
    tracksOf: async () => [],
    subtitlePlaylistOf: async () => null,
    captionFileOf: async () => null,
  };
  const noTracks = { captions: noCaptions, audioTracks: { readyTracksOf: async () => [] } };
  const live = createLivePlaylists({
    windowSeconds: 0,
    readText: async (key) => {
      reads.set(key, (reads.get(key) ?? 0) + 1);
      if (slowReads.has(key)) await sleep(500);
      return storage.readText(key);
    },
  });
  server = createServer((req, res) => {
    handleMedia(storage, guard, noTracks, live, req, res, new URL(req.url!, "http://api")).catch(() => {
      res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${MEDIA_PATH_PREFIX}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  if (root) await rm(root, { recursive: true, force: true });
});

/** A rung playlist as the worker's publisher writes it: segments 0 to `count - 1` of `target` seconds. */
function playlist(count: number, opts: { target?: number; ended?: boolean } = {}): string {
  const target = opts.target ?? 1;
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:6",
    `#EXT-X-TARGETDURATION:${target}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:EVENT",
    "#EXT-X-INDEPENDENT-SEGMENTS",
  ];
  for (let i = 0; i < count; i++) lines.push(`#EXTINF:${target.toFixed(6)},`, `seg_${String(i).padStart(5, "0")}.ts`);
  if (opts.ended) lines.push("#EXT-X-ENDLIST");
  return `${lines.join("\n")}\n`;
}

/** A new video with its rung playlist written; its key and URL. */
async function rung(live: boolean, text: string) {
  const videoId = randomUUID();
  if (live) liveVideos.add(videoId);
  const key = `videos/${videoId}/hls/360p/index.m3u8`;
  await mkdir(path.join(root, path.dirname(key)), { recursive: true });
  const write = (next: string) => writeFile(path.join(root, key), next);
  await write(text);
  return { key, url: `${base}${key}`, write };
}

const listed = (text: string) => text.split("\n").filter((l) => l.endsWith(".ts"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("deliveryDirectives", () => {
  it("reads _HLS_msn and _HLS_part as decimal numbers, and refuses anything else", () => {
    const at = (query: string) => deliveryDirectives(new URL(`http://api/x.m3u8${query}`));
    expect(at("")).toBeNull();
    expect(at("?_HLS_msn=7")).toEqual({ msn: 7 });
    expect(at("?_HLS_msn=7&_HLS_part=2")).toEqual({ msn: 7 });
    for (const query of [
      "?_HLS_part=1",
      "?_HLS_msn=",
      "?_HLS_msn=-1",
      "?_HLS_msn=1e3",
      "?_HLS_msn=0x10",
      "?_HLS_msn=1&_HLS_part=x",
    ])
      expect(at(query), query).toHaveProperty("problem");
    expect(at(`?_HLS_msn=${"9".repeat(16)}`)).toHaveProperty("problem");
  });
});

describe("a live rung playlist over /media/", () => {
  it("offers blocking reload, is kept by no browser, and answers a request for the next segment once it is listed", async () => {
    const { url, write } = await rung(true, playlist(3));
    const plain = await fetch(url);
    expect(plain.status).toBe(200);
    const text = await plain.text();
    // After the target duration, where RFC 8216bis puts EXT-X-SERVER-CONTROL.
    expect(text.split("\n").slice(2, 4)).toEqual([
      "#EXT-X-TARGETDURATION:1",
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
    ]);
    // One-second segments: neither a browser nor a shared cache keeps it.
    expect(plain.headers.get("cache-control")).toBe("public, max-age=0");

    // Listed already: at once.
    const now = await fetch(`${url}?_HLS_msn=2`);
    expect(now.status).toBe(200);
    expect(listed(await now.text())).toHaveLength(3);

    // The next one: held until the worker lists it.
    let answeredAt = 0;
    const held = fetch(`${url}?_HLS_msn=3`).then(async (res) => {
      answeredAt = Date.now();
      return { status: res.status, cacheControl: res.headers.get("cache-control"), text: await res.text() };
    });
    await sleep(400);
    expect(answeredAt).toBe(0);
    await write(playlist(4));
    const writtenAt = Date.now();
    const answer = await held;
    expect(answer.status).toBe(200);
    expect(listed(answer.text)).toHaveLength(4);
    // Read every tenth of a target duration while held: well within a segment of the write.
    expect(answeredAt - writtenAt).toBeLessThan(400);
    // The answer lists segment 3 for good: a shared cache may keep it six target durations.
    expect(answer.cacheControl).toBe("public, max-age=6");
  });

  it("refuses a segment more than two past the last listed, and malformed directives, with 400", async () => {
    const { url } = await rung(true, playlist(3));
    for (const query of ["?_HLS_msn=5", "?_HLS_msn=abc", "?_HLS_part=0", `?_HLS_msn=${"1".repeat(20)}`]) {
      const res = await fetch(`${url}${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get("cache-control"), query).toBe("no-store");
    }
  });

  it("answers a held request whose segment does not come after three target durations, without the tag, and offers it again once the playlist grows", async () => {
    const { url, write } = await rung(true, playlist(2));
    expect(await (await fetch(url)).text()).toContain("CAN-BLOCK-RELOAD=YES");
    const started = Date.now();
    const res = await fetch(`${url}?_HLS_msn=2`);
    const waited = Date.now() - started;
    expect(res.status).toBe(200);
    expect(waited).toBeGreaterThanOrEqual(2900);
    expect(waited).toBeLessThan(4500);
    // A stalled publisher: the player is told to poll, not to wait on a segment that may not come.
    const text = await res.text();
    expect(listed(text)).toHaveLength(2);
    expect(text).not.toContain("EXT-X-SERVER-CONTROL");
    expect(res.headers.get("cache-control")).toBe("public, max-age=0");
    await write(playlist(3));
    expect(await (await fetch(url)).text()).toContain("CAN-BLOCK-RELOAD=YES");
  });

  it("answers a request held on a broadcast that ends at once with the ended playlist", async () => {
    const { url, write } = await rung(true, playlist(2));
    const held = fetch(`${url}?_HLS_msn=3`);
    await sleep(300);
    await write(playlist(2, { ended: true }));
    const res = await held;
    const text = await res.text();
    expect(text).toContain("#EXT-X-ENDLIST");
    expect(text).not.toContain("EXT-X-SERVER-CONTROL");
    // Ended now, asked for further on than it lists: at once.
    const after = await fetch(`${url}?_HLS_msn=4`);
    expect(after.status).toBe(200);
    expect(await after.text()).toContain("#EXT-X-ENDLIST");
  });

  it("reads a playlist once per tenth of a target duration however many requests wait on it", async () => {
    const { key, url, write } = await rung(true, playlist(2));
    await fetch(url);
    reads.set(key, 0);
    const waiting = Array.from({ length: 200 }, () => fetch(`${url}?_HLS_msn=2`).then((r) => r.text()));
    await sleep(1000);
    await write(playlist(3));
    const answers = await Promise.all(waiting);
    expect(answers.every((a) => listed(a).length === 3)).toBe(true);
    // About ten reads in the second they waited, for all 200 of them: at most, since a read under
    // way is shared and a loaded host reads less often (3 in a CI run); at least the one that found
    // the segment missing and the one that found it.
    expect(reads.get(key)!).toBeGreaterThanOrEqual(2);
    expect(reads.get(key)!).toBeLessThan(20);
  });

  it("shares one read among the requests that arrive while it runs", async () => {
    const { key, url, write } = await rung(true, playlist(2));
    await fetch(url);
    slowReads.add(key);
    reads.set(key, 0);
    // Each asks for segment 2 before anyone has read that it is not there yet.
    const waiting = Array.from({ length: 200 }, () => fetch(`${url}?_HLS_msn=2`).then((r) => r.text()));
    await sleep(1200);
    await write(playlist(3));
    const answers = await Promise.all(waiting);
    expect(answers.filter((a) => listed(a).length !== 3)).toEqual([]);
    // A read of half a second, a tenth of a second apart: a handful, not one per request.
    expect(reads.get(key)!).toBeGreaterThanOrEqual(2);
    expect(reads.get(key)!).toBeLessThan(10);
  });
});

describe("two API instances behind one load balancer", () => {
  it("do not refuse a player the other instance answered more recently as asking too far ahead", async () => {
    const { key, write } = await rung(true, playlist(2));
    const storage = new LocalStorage(root, {
      publicUrl: "",
      signer: new UrlSigner("s".repeat(32)),
      uploadUrlTtlSeconds: 60,
    });
    const other = createLivePlaylists({ windowSeconds: 0, readText: (k) => storage.readText(k) });
    // This instance last served segments 0-1; the other then served 0-5, and the player asks for 6.
    other.view(key, playlist(2));
    await write(playlist(6));
    const held = other.waitFor(key, 6);
    await sleep(200);
    await write(playlist(7));
    expect(await held).toBe("ready");
  });
});

describe("a playlist that is not a live broadcast's", () => {
  it("offers no blocking reload, answers a directive at once, and while it grows is kept by no browser", async () => {
    const { url, write } = await rung(false, playlist(2, { target: 4 }));
    const started = Date.now();
    const res = await fetch(`${url}?_HLS_msn=3`);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(res.status).toBe(200);
    expect(await res.text()).not.toContain("EXT-X-SERVER-CONTROL");
    // A shared cache may keep it half a target duration.
    expect(res.headers.get("cache-control")).toBe("public, max-age=0, s-maxage=2");
    await write(playlist(3, { target: 4, ended: true }));
    expect((await fetch(url)).headers.get("cache-control")).toBe("public, max-age=2");
  });
});
