import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlaybackTokens } from "../src/http/playback-tokens.ts";
import { UrlSigner } from "../src/storage/url-signer.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const SIGNING_SECRET = "test-signing-secret-test-signing-secret-0123";
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const URLS = graphql(
  `query($id: ID!) { video(id: $id) { playbackPolicy playbackUrl posterUrl variants { name playlistUrl } } }`,
);

describe("signed playback and upload URLs", () => {
  let t: TestApp;
  let clip: string;
  const tokens = new PlaybackTokens(SIGNING_SECRET, 900);
  const get = (p: string) => fetch(p.startsWith("http") ? p : `${t.url}${p}`);
  const withToken = (p: string, token: string) => `${p.split("?")[0]}?token=${encodeURIComponent(token)}`;

  async function readyVideo(policy: "PUBLIC" | "SIGNED"): Promise<string> {
    const created = await createUpload(t, policy, { playbackPolicy: policy });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    return created.id;
  }

  beforeAll(async () => {
    t = await startTestApp({ env: { SIGNING_SECRET } });
    clip = await makeClip({ width: 160, height: 90, seconds: 2, audio: true });
  });
  afterAll(() => t?.stop());

  describe("a SIGNED video", () => {
    let id: string;
    let urls: { playbackUrl: string; posterUrl: string; variants: { name: string; playlistUrl: string }[] };
    beforeAll(async () => {
      id = await readyVideo("SIGNED");
      const video = (await t.gql(URLS, { id })).data.video!;
      // READY: its URLs are given.
      urls = {
        playbackUrl: video.playbackUrl!,
        posterUrl: video.posterUrl!,
        variants: video.variants.map((v) => ({ name: v.name, playlistUrl: v.playlistUrl! })),
      };
    });

    it("hands out URLs that carry a token and play: master, variant playlists, segments, poster", async () => {
      expect(urls.playbackUrl).toMatch(/\/master\.m3u8\?token=o\.\d+\.[\w-]{43}$/);
      const master = await get(urls.playbackUrl);
      expect(master.status).toBe(200);
      expect(master.headers.get("cache-control")).toMatch(/^private/);
      const masterText = await master.text();
      // Video rungs are URI lines; the audio rendition is a URI="…" attribute of EXT-X-MEDIA.
      const children = [
        ...masterText.split("\n").filter((l) => l && !l.startsWith("#")),
        ...[...masterText.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]!),
      ];
      expect(children.length).toBe(urls.variants.length);
      for (const child of children) expect(child).toMatch(/index\.m3u8\?token=/);

      // Follow the master's own (relative) child URI, as a player does.
      const variantUrl = new URL(children[0]!, `${t.url}${urls.playbackUrl}`).href;
      const variant = await get(variantUrl);
      expect(variant.status).toBe(200);
      const segments = (await variant.text()).split("\n").filter((l) => l && !l.startsWith("#"));
      expect(segments.length).toBeGreaterThan(0);
      for (const segment of segments) {
        expect(segment).toMatch(/\.ts\?token=/);
        const res = await get(new URL(segment, variantUrl).href);
        expect(res.status).toBe(200);
        // Tenant bytes are never sniffed into HTML or script by a browser.
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
      }
      const poster = await get(urls.posterUrl);
      expect(poster.status).toBe(200);
      expect(poster.headers.get("x-content-type-options")).toBe("nosniff");
      expect(master.headers.get("x-content-type-options")).toBe("nosniff");
      for (const v of urls.variants) expect((await get(v.playlistUrl)).status).toBe(200);
    });

    it("refuses every media URL without a token, with a tampered, expired or another video's token", async () => {
      const good = new URL(urls.playbackUrl, t.url).searchParams.get("token")!;
      const [kind, expires, mac] = good.split(".");
      const flipped = `${kind}.${expires}.${mac!.slice(0, -1)}${mac!.endsWith("A") ? "B" : "A"}`;
      const otherVideo = tokens.issue("00000000-0000-4000-8000-00000000abcd");
      const expired = tokens.issue(id, 60, Date.now() - 3600_000);
      const paths = [
        urls.playbackUrl,
        urls.posterUrl,
        urls.variants[0]!.playlistUrl,
        `/media/videos/${id}/hls/${urls.variants[0]!.name}/seg_00000.ts`,
      ];
      for (const p of paths) {
        const bare = p.split("?")[0]!;
        const refused = await get(bare);
        expect(refused.status, `${bare} without token`).toBe(403);
        expect(refused.headers.get("x-content-type-options")).toBe("nosniff");
        for (const [token, reason] of [
          [flipped, "invalid"],
          [otherVideo, "invalid"],
          [expired, "expired"],
          [`${kind}.${Number(expires) + 3600}.${mac}`, "invalid"],
          [`s.${expires}.${mac}`, "invalid"],
          [`${kind}.0${expires}.${flipped.split(".")[2]}`, "invalid"],
        ] as const) {
          const res = await get(withToken(bare, token));
          expect(res.status, `${bare} ${reason}`).toBe(403);
          expect(await res.text()).toContain(reason);
        }
      }
      // A token that opened a playlist no longer opens one after it expired; the URIs inside carry a
      // session token, so playback that started in time goes on.
      const nearlyExpired = tokens.issue(id, 2);
      const opened = await (await get(withToken(urls.variants[0]!.playlistUrl, nearlyExpired))).text();
      const session = /token=([^\s&]+)/.exec(opened)![1]!;
      expect(Number(decodeURIComponent(session).split(".")[1])).toBeGreaterThan(Date.now() / 1000 + 3600);
      // The same token still works on the video it was issued for.
      expect(
        (await get(withToken(`/media/videos/${id}/hls/${urls.variants[0]!.name}/seg_00000.ts`, good))).status,
      ).toBe(200);
    });

    it(`a session token from inside a playlist never opens the master, and replaying it never \
extends the session`, async () => {
      const tokenIn = (text: string) => decodeURIComponent(/token=([^\s&"]+)/.exec(text)![1]!);
      const master = await (await get(urls.playbackUrl)).text();
      const session = tokenIn(master);
      const replayed = await get(withToken(urls.playbackUrl, session));
      expect(replayed.status).toBe(403);
      expect(await replayed.text()).toContain("session token");

      // Re-fetching a variant playlist with the session token carries that same token along (same
      // end), however often and however late it is re-fetched: no fresh session comes out of it.
      await new Promise((r) => setTimeout(r, 1100));
      const variantPath = urls.variants[0]!.playlistUrl.split("?")[0]!;
      const refetched = await get(withToken(variantPath, session));
      expect(refetched.status).toBe(200);
      expect(tokenIn(await refetched.text())).toBe(session);
    });

    it("a session plays to its end after the opening token expired, and not a second longer", async () => {
      const opening = tokens.issue(id, 2);
      const variantPath = urls.variants[0]!.playlistUrl.split("?")[0]!;
      const segmentPath = `/media/videos/${id}/hls/${urls.variants[0]!.name}/seg_00000.ts`;
      const master = await get(withToken(urls.playbackUrl.split("?")[0]!, opening));
      expect(master.status).toBe(200);
      const session = decodeURIComponent(/token=([^\s&"]+)/.exec(await master.text())![1]!);
      await new Promise((r) => setTimeout(r, 2500));
      const expiredOpening = await get(withToken(urls.playbackUrl, opening));
      expect(expiredOpening.status).toBe(403);
      expect(await expiredOpening.text()).toContain("expired");
      expect((await get(withToken(variantPath, session))).status).toBe(200);
      expect((await get(withToken(segmentPath, session))).status).toBe(200);

      const ended = tokens.issueSession(id, Math.floor(Date.now() / 1000) - 1);
      for (const p of [variantPath, segmentPath]) {
        const res = await get(withToken(p, ended));
        expect(res.status, p).toBe(403);
        expect(await res.text()).toContain("expired");
      }
    });
  });

  it("a PUBLIC video plays without a token and its URLs carry none", async () => {
    const id = await readyVideo("PUBLIC");
    const video = (await t.gql(URLS, { id })).data.video!;
    expect(video.playbackPolicy).toBe("PUBLIC");
    expect(video.playbackUrl).not.toContain("token=");
    const master = await get(video.playbackUrl!);
    expect(master.status).toBe(200);
    expect(master.headers.get("cache-control")).toMatch(/^public/);
  });

  describe("upload URLs are single-use, expire, and are bound to one video and a size", () => {
    const signer = new UrlSigner(SIGNING_SECRET);

    async function newUpload(size?: number) {
      const created = await createUpload(t, "u", { size });
      return { id: created.id as string, url: new URL(created.uploadUrl, t.url) };
    }

    it("an expired URL is refused", async () => {
      const { id, url } = await newUpload();
      const stale = signer.sign(`/uploads/${id}`, -5, {
        max: url.searchParams.get("max")!,
        n: url.searchParams.get("n")!,
      });
      const res = await fetch(`${t.url}${stale}`, { method: "PUT", body: "bytes" });
      expect(res.status).toBe(403);
      expect((await res.json()).error).toContain("expired");
    });

    it("a URL whose size limit was raised is refused (the limit is signed); the signed limit holds", async () => {
      const { url } = await newUpload(1000);
      expect(url.searchParams.get("max")).toBe("1000");
      const raised = new URL(url);
      raised.searchParams.set("max", "999999");
      expect((await fetch(raised, { method: "PUT", body: new Uint8Array(2000) })).status).toBe(403);
      const tooBig = await fetch(url, { method: "PUT", body: new Uint8Array(2000) });
      expect(tooBig.status).toBe(413);
    });

    it("after the upload completes the URL is spent; a URL whose nonce is not the video's is refused", async () => {
      const { id, url } = await newUpload();
      const done = collectSubscription(t.wsClient(), EVENTS, { id }).done;
      expect((await fetch(url, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
      const replay = await fetch(url, { method: "PUT", body: await readFile(clip) });
      expect(replay.status).toBe(409);
      expect((await t.app.services.db.video.findUniqueOrThrow({ where: { id } })).uploadNonce).toBeNull();
      await done;

      const other = await newUpload();
      // Only a database edit makes one: a URL keeps its video's nonce until the upload completes.
      await t.app.services.db.video.update({ where: { id: other.id }, data: { uploadNonce: "another-nonce" } });
      const replaced = await fetch(other.url, { method: "PUT", body: "bytes" });
      expect(replaced.status).toBe(403);
    });
  });
});
