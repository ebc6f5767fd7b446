import { createHash, generateKeyPairSync, verify } from "node:crypto";
import { Storage } from "@google-cloud/storage";
import { describe, expect, test, vi } from "vitest";
import { loadWorkerEnv } from "../render-worker/config.ts";
import { loadEnv } from "../src/config.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../src/errors.ts";
import { GcsStorage } from "../src/storage/gcs.ts";
import { handleObjectNotification } from "../src/uploads/gcs-notifications.ts";
import { resolvePlaylistUri, rewritePlaylistUris } from "../src/storage/playlists.ts";

// These tests talk to no server; an emulator host would only change the URLs' origin.
delete process.env.STORAGE_EMULATOR_HOST;

const TTL = 6 * 3600;
const CLIENT_EMAIL = "signer@videograph-test.iam.gserviceaccount.com";

function throwawayKey() {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
}

function gcsStorage(privateKey: string, publicUrl = "https://api.example.com") {
  const client = new Storage({
    projectId: "videograph-test",
    credentials: { client_email: CLIENT_EMAIL, private_key: privateKey },
  });
  return new GcsStorage({ bucket: "videograph-media", publicUrl, signedUrlTtlSeconds: TTL, client });
}

/** RFC 3986 encoding, as V4 canonical query strings want it. */
const encode = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Checks a V4 signed URL the way GCS does, from the spec, with the signer's public key. */
function verifyV4(signedUrl: string, publicKey: string): boolean {
  const url = new URL(signedUrl);
  const params = [...url.searchParams].filter(([k]) => k !== "X-Goog-Signature");
  const canonicalQuery = params
    .map(([k, v]) => [encode(k), encode(v)])
    .sort(([a], [b]) => (a! < b! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonicalRequest = ["GET", url.pathname, canonicalQuery, `host:${url.host}\n`, "host", "UNSIGNED-PAYLOAD"].join(
    "\n",
  );
  const date = url.searchParams.get("X-Goog-Date")!;
  const scope = url.searchParams.get("X-Goog-Credential")!.split("/").slice(1).join("/");
  const stringToSign = [
    "GOOG4-RSA-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  return verify(
    "RSA-SHA256",
    Buffer.from(stringToSign),
    publicKey,
    Buffer.from(url.searchParams.get("X-Goog-Signature")!, "hex"),
  );
}

const parseGoogDate = (d: string) =>
  Date.parse(
    `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`,
  );

describe("GCS signed read URLs (offline signing: the emulator accepts any signature, GCS would not)", () => {
  const key = throwawayKey();
  const storage = gcsStorage(key.privateKey);

  test(`a segment's URL is a V4 signed URL of the object, valid for at least 3/4 of the TTL, that verifies with the \
signer's key`, async () => {
    const objectKey = "videos/0b4f7c1e-2f57-4a44-9d35-1f0c3c8e2a10/hls/720p/seg_00003.ts";
    const before = Date.now();
    const signed = new URL(await storage.urlFor(objectKey));
    expect(signed.origin).toBe("https://storage.googleapis.com");
    expect(signed.pathname).toBe(`/videograph-media/${objectKey}`);
    expect(signed.searchParams.get("X-Goog-Algorithm")).toBe("GOOG4-RSA-SHA256");
    expect(signed.searchParams.get("X-Goog-Credential")).toMatch(
      new RegExp(`^${CLIENT_EMAIL}/\\d{8}/auto/storage/goog4_request$`),
    );
    expect(signed.searchParams.get("X-Goog-SignedHeaders")).toBe("host");
    expect(Number(signed.searchParams.get("X-Goog-Expires"))).toBe(TTL);
    const issued = parseGoogDate(signed.searchParams.get("X-Goog-Date")!);
    expect(issued).toBeLessThanOrEqual(before);
    expect(issued + TTL * 1000 - before).toBeGreaterThanOrEqual(0.75 * TTL * 1000);
    expect(issued % ((TTL / 4) * 1000)).toBe(0);

    expect(verifyV4(signed.toString(), key.publicKey)).toBe(true);
    expect(verifyV4(signed.toString(), throwawayKey().publicKey)).toBe(false);
    const tampered = new URL(signed);
    tampered.pathname = tampered.pathname.replace("seg_00003", "seg_00004");
    expect(verifyV4(tampered.toString(), key.publicKey)).toBe(false);
  });

  test("URLs are reused within a window and renewed after it", async () => {
    const objectKey = "videos/0b4f7c1e-2f57-4a44-9d35-1f0c3c8e2a10/thumbnails/poster.jpg";
    const now = Date.now();
    const first = await storage.signedReadUrl(objectKey, now);
    expect(await storage.signedReadUrl(objectKey, now)).toBe(first);
    expect(await storage.urlFor("videos/0b4f7c1e-2f57-4a44-9d35-1f0c3c8e2a10/hls/720p/seg_00000.ts")).not.toBe(first);
    const later = await storage.signedReadUrl(objectKey, now + (TTL / 4) * 1000);
    expect(later).not.toBe(first);
    expect(parseGoogDate(new URL(later).searchParams.get("X-Goog-Date")!)).toBeGreaterThan(
      parseGoogDate(new URL(first).searchParams.get("X-Goog-Date")!),
    );
    expect(verifyV4(later, key.publicKey)).toBe(true);
  });

  test("a playlist's URL is the API's /media/ URL, not a signed one", async () => {
    expect(await storage.urlFor("videos/v1/hls/master.m3u8")).toBe(
      "https://api.example.com/media/videos/v1/hls/master.m3u8",
    );
    expect(await gcsStorage(key.privateKey, "").urlFor("videos/v1/hls/720p/index.m3u8")).toBe(
      "/media/videos/v1/hls/720p/index.m3u8",
    );
  });

  test("keys that could leave the bucket's layout are refused", async () => {
    expect(() => storage.signedReadUrl("videos/v1/../../etc/passwd")).toThrow(/Invalid storage key/);
    await expect(storage.urlFor("/videos/v1/hls/seg.ts")).rejects.toThrow(/Invalid storage key/);
  });
});

describe("playlist rewriting for GCS playback", () => {
  const sign = (key: string) => Promise.resolve(`https://signed.example/${key}?sig=1`);

  test("segments and init sections get signed URLs; tags, child playlists and ENDLIST stay", async () => {
    const playlist = [
      "#EXTM3U",
      "#EXT-X-VERSION:7",
      "#EXT-X-TARGETDURATION:4",
      '#EXT-X-MAP:URI="init.mp4"',
      "#EXTINF:4.000000,",
      "seg_00000.m4s",
      "#EXTINF:3.500000,",
      "seg_00001.m4s",
      "#EXT-X-ENDLIST",
      "",
    ].join("\r\n");
    const out = await rewritePlaylistUris(playlist, "videos/v1/hls/720p/index.m3u8", sign);
    expect(out.split("\n")).toEqual([
      "#EXTM3U",
      "#EXT-X-VERSION:7",
      "#EXT-X-TARGETDURATION:4",
      '#EXT-X-MAP:URI="https://signed.example/videos/v1/hls/720p/init.mp4?sig=1"',
      "#EXTINF:4.000000,",
      "https://signed.example/videos/v1/hls/720p/seg_00000.m4s?sig=1",
      "#EXTINF:3.500000,",
      "https://signed.example/videos/v1/hls/720p/seg_00001.m4s?sig=1",
      "#EXT-X-ENDLIST",
      "",
    ]);
  });

  test("a master playlist keeps its playlist URIs relative (players come back to the API for them)", async () => {
    const master = [
      "#EXTM3U",
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="audio/index.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"',
      "720p/index.m3u8",
      '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="720p/iframes.m3u8"',
    ].join("\n");
    const urlFor = vi.fn(sign);
    expect(await rewritePlaylistUris(master, "videos/v1/hls/master.m3u8", urlFor)).toBe(master);
    expect(urlFor).not.toHaveBeenCalled();
  });

  test(`relative paths are resolved; absolute URIs and URIs leaving the video are left alone; each key \
is signed once`, async () => {
    const urlFor = vi.fn(sign);
    const text = [
      "#EXTM3U",
      "../360p/seg_1.ts",
      "seg_1.ts",
      "seg_1.ts",
      "https://cdn.example/ad.ts",
      "../../../v2/hls/720p/seg_1.ts",
      "/abs/seg.ts",
    ].join("\n");
    const out = (await rewritePlaylistUris(text, "videos/v1/hls/720p/index.m3u8", urlFor)).split("\n");
    expect(out).toEqual([
      "#EXTM3U",
      "https://signed.example/videos/v1/hls/360p/seg_1.ts?sig=1",
      "https://signed.example/videos/v1/hls/720p/seg_1.ts?sig=1",
      "https://signed.example/videos/v1/hls/720p/seg_1.ts?sig=1",
      "https://cdn.example/ad.ts",
      "../../../v2/hls/720p/seg_1.ts",
      "/abs/seg.ts",
    ]);
    expect(urlFor.mock.calls.map(([k]) => k).sort()).toEqual([
      "videos/v1/hls/360p/seg_1.ts",
      "videos/v1/hls/720p/seg_1.ts",
    ]);
  });

  test("resolvePlaylistUri and a playlist outside videos/", async () => {
    expect(resolvePlaylistUri("videos/v1/hls/master.m3u8", "720p/seg%201.ts")).toBe("videos/v1/hls/720p/seg 1.ts");
    expect(resolvePlaylistUri("videos/v1/hls/master.m3u8", "seg.ts?x=1")).toBeNull();
    await expect(rewritePlaylistUris("#EXTM3U\n", "other/master.m3u8", sign)).rejects.toThrow(/Not a video's playlist/);
  });
});

describe("GCS configuration", () => {
  const messages = (fn: () => unknown) => {
    try {
      fn();
      return "";
    } catch (err) {
      return (err as Error).message;
    }
  };

  test("local storage stays the default; STORAGE=gcs needs GCS_BUCKET; the TTL has bounds", () => {
    const env = loadEnv({});
    expect(env.STORAGE).toBe("local");
    expect(env.GCS_SIGNED_URL_TTL_SECONDS).toBe(6 * 3600);
    expect(messages(() => loadEnv({ STORAGE: "gcs" }))).toMatch(/GCS_BUCKET: required when STORAGE=gcs/);
    expect(loadEnv({ STORAGE: "gcs", GCS_BUCKET: "videograph-media" }).GCS_BUCKET).toBe("videograph-media");
    const invalid = messages(() =>
      loadEnv({ STORAGE: "azure", GCS_BUCKET: "Not_A_Bucket", GCS_SIGNED_URL_TTL_SECONDS: String(8 * 24 * 3600) }),
    );
    expect(invalid).toMatch(/STORAGE:/);
    expect(invalid).toMatch(/GCS_BUCKET:/);
    expect(invalid).toMatch(/GCS_SIGNED_URL_TTL_SECONDS:/);
  });

  test("a notification subscription needs a project unless it is a full name", () => {
    expect(messages(() => loadEnv({ GCS_NOTIFICATION_SUBSCRIPTION: "uploads" }))).toMatch(
      /GOOGLE_CLOUD_PROJECT: required with GCS_NOTIFICATION_SUBSCRIPTION/,
    );
    expect(
      loadEnv({ GCS_NOTIFICATION_SUBSCRIPTION: "projects/p/subscriptions/uploads" }).GCS_NOTIFICATION_SUBSCRIPTION,
    ).toBe("projects/p/subscriptions/uploads");
    expect(
      loadEnv({ GCS_NOTIFICATION_SUBSCRIPTION: "uploads", GOOGLE_CLOUD_PROJECT: "p" }).GCS_NOTIFICATION_SUBSCRIPTION,
    ).toBe("uploads");
  });

  test(`an emulator is named by GCS_API_ENDPOINT; STORAGE_EMULATOR_HOST, which the Node client misroutes, is refused \
with STORAGE=gcs`, () => {
    const gcs = { STORAGE: "gcs", GCS_BUCKET: "videograph-media", DATABASE_URL: "postgresql://localhost/videograph" };
    for (const load of [loadEnv, loadWorkerEnv]) {
      expect(load({ ...gcs, GCS_API_ENDPOINT: "http://127.0.0.1:4443" }).GCS_API_ENDPOINT).toBe(
        "http://127.0.0.1:4443",
      );
      expect(messages(() => load({ ...gcs, GCS_API_ENDPOINT: "gcs:4443" }))).toMatch(/GCS_API_ENDPOINT:/);
      expect(messages(() => load({ ...gcs, STORAGE_EMULATOR_HOST: "http://127.0.0.1:4443" }))).toMatch(
        /STORAGE_EMULATOR_HOST: not supported: set GCS_API_ENDPOINT/,
      );
      expect(load({ DATABASE_URL: gcs.DATABASE_URL, STORAGE_EMULATOR_HOST: "http://127.0.0.1:4443" }).STORAGE).toBe(
        "local",
      );
    }
  });

  test("the worker reads the same storage variables", () => {
    const base = { DATABASE_URL: "postgresql://localhost/videograph" };
    expect(loadWorkerEnv(base).STORAGE).toBe("local");
    expect(messages(() => loadWorkerEnv({ ...base, STORAGE: "gcs" }))).toMatch(/GCS_BUCKET: required when STORAGE=gcs/);
    const env = loadWorkerEnv({
      ...base,
      STORAGE: "gcs",
      GCS_BUCKET: "videograph-media",
      GCS_SIGNED_URL_TTL_SECONDS: "7200",
    });
    expect([env.GCS_BUCKET, env.GCS_SIGNED_URL_TTL_SECONDS]).toEqual(["videograph-media", 7200]);
  });
});

describe("bucket notification handling (parsing only; the Pub/Sub path is in gcs-upload-completion.test.ts)", () => {
  const videoId = "0b4f7c1e-2f57-4a44-9d35-1f0c3c8e2a10";
  const finalize = (objectId: string, extra: Record<string, string> = {}) => ({
    eventType: "OBJECT_FINALIZE",
    bucketId: "videograph-media",
    objectId,
    objectGeneration: "1700000000000000",
    payloadFormat: "JSON_API_V1",
    ...extra,
  });

  test("only the finalize of an uploaded source in the configured bucket completes an upload", async () => {
    const complete = vi.fn(async () => ({ queued: true }));
    const opts = { bucket: "videograph-media", complete };
    expect(await handleObjectNotification(finalize(`videos/${videoId}/source/upload`), opts)).toEqual({
      outcome: "queued",
      videoId,
    });
    expect(complete).toHaveBeenCalledExactlyOnceWith(videoId);

    expect(
      (
        await handleObjectNotification(
          finalize(`videos/${videoId}/source/upload`, { eventType: "OBJECT_DELETE" }),
          opts,
        )
      ).outcome,
    ).toBe("ignored");
    expect(
      (await handleObjectNotification(finalize(`videos/${videoId}/source/upload`, { bucketId: "other" }), opts))
        .outcome,
    ).toBe("ignored");
    expect((await handleObjectNotification(finalize(`videos/${videoId}/hls/720p/seg_00000.ts`), opts)).outcome).toBe(
      "ignored",
    );
    expect((await handleObjectNotification(finalize("videos/not-a-uuid/source/upload"), opts)).outcome).toBe("ignored");
    expect((await handleObjectNotification({ hello: "world" }, opts)).outcome).toBe("ignored");
    expect(complete).toHaveBeenCalledTimes(1);
    expect(
      (
        await handleObjectNotification(finalize(`videos/${videoId}/source/upload`, { bucketId: "any" }), {
          bucket: null,
          complete,
        })
      ).outcome,
    ).toBe("queued");
  });

  test("refusals are outcomes (acked); unexpected failures are thrown (redelivered)", async () => {
    const object = finalize(`videos/${videoId}/source/upload`);
    const failing = (err: Error) => ({ bucket: null, complete: async () => Promise.reject(err) });
    expect(await handleObjectNotification(object, { bucket: null, complete: async () => ({ queued: false }) })).toEqual(
      { outcome: "unchanged", videoId },
    );
    for (const err of [
      new ValidationError("videoId", "empty"),
      new FileTooLargeError(10),
      new NotFoundError("video", videoId),
    ]) {
      expect(await handleObjectNotification(object, failing(err))).toEqual({
        outcome: "rejected",
        videoId,
        reason: err.message,
      });
    }
    await expect(handleObjectNotification(object, failing(new Error("database down")))).rejects.toThrow(
      "database down",
    );
  });
});
