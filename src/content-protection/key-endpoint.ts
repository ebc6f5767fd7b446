import type { IncomingMessage, ServerResponse } from "node:http";
import type { Db } from "../db/client.ts";
import type { PlaybackTokens } from "../http/playback-tokens.ts";
import { isUuid } from "../ids.ts";
import { z } from "zod";
import { cencKey, segmentGroupKey } from "../shared/segment-keys.ts";
import type { ContentKeys } from "./content-keys.ts";

/** What the key endpoint reads: the videos' key rows, and how to open them and check tokens. */
export interface KeyEndpointDeps {
  db: Pick<Db, "video">;
  contentKeys: ContentKeys;
  tokens: PlaybackTokens;
}

function refuse(res: ServerResponse, status: number, problem: string): void {
  res.writeHead(status, {
    "content-type": "text/plain",
    "cache-control": "no-store",
    "access-control-allow-origin": "*",
  });
  res.end(problem);
}

/**
 * `GET /media/videos/{id}/keys/{group}.key`: the 16 bytes of a protected video's AES-128 key group
 * (src/shared/segment-keys.ts), only with a playback token (opening or session) of that video,
 * whatever its playback policy: a PUBLIC video's playlists carry a session token for it. Never
 * cached by anyone but the player. 404 for a video that is not protected or does not exist, so the
 * endpoint says no more about a video than its media route does.
 */
export async function serveSegmentKey(
  deps: KeyEndpointDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  request: { videoId: string; group: number },
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" });
    res.end();
    return;
  }
  const { videoId, group } = request;
  if (!isUuid(videoId)) return refuse(res, 404, "Not found");
  const checked = deps.tokens.check(videoId, url.searchParams.get("token"), ["open", "session"]);
  if ("problem" in checked) return refuse(res, 403, `Forbidden: ${checked.problem}`);
  const video = await deps.db.video.findUnique({
    where: { id: videoId },
    select: { contentProtection: true, contentKey: { select: { keyId: true, sealedKey: true } } },
  });
  if (!video?.contentProtection || !video.contentKey) return refuse(res, 404, "Not found");
  let contentKey: Buffer;
  try {
    contentKey = deps.contentKeys.open(video.contentKey);
  } catch {
    // Sealed under another SIGNING_SECRET (docs/failure-model.md): nothing a caller can change.
    return refuse(res, 500, "The video's key cannot be opened with this service's SIGNING_SECRET");
  }
  const key = segmentGroupKey(contentKey, group);
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": key.byteLength,
    "cache-control": "private, no-store",
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : key);
}

/** The most bytes a licence request may have: a ClearKey request names a few 22-character key ids. */
const MAX_LICENCE_REQUEST_BYTES = 4096;

/** A ClearKey licence request (W3C EME, "Clear Key"): the key ids the CDM asks for. */
const LicenceRequest = z.object({
  kids: z.array(z.string().max(64)).min(1).max(16),
  type: z.string().max(64).optional(),
});

/** The request's body, or null when it is longer than `limit` bytes (the rest is not read). */
async function boundedBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * `POST /media/videos/{id}/keys/clearkey`: a CENC video's ClearKey licence (W3C EME Clear Key:
 * `{"kids": [base64url], "type": "temporary"}` → `{"keys": [{"kty": "oct", "kid", "k"}], "type"}`),
 * with the same guard and refusals as the AES-128 key route (a playback token of that video, 404
 * for a video that is not CENC-protected), and only for that video's key id: a request naming no
 * key of it is refused (404). The body is bounded and parsed as JSON, never scanned.
 */
export async function serveClearKeyLicence(
  deps: KeyEndpointDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  request: { videoId: string },
): Promise<void> {
  if (req.method === "OPTIONS") {
    res.writeHead(204, {
      "access-control-allow-origin": "*",
      "access-control-allow-methods": "POST",
      "access-control-allow-headers": "content-type",
      "access-control-max-age": "600",
    });
    res.end();
    return;
  }
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "POST" });
    res.end();
    return;
  }
  const { videoId } = request;
  if (!isUuid(videoId)) return refuse(res, 404, "Not found");
  const checked = deps.tokens.check(videoId, url.searchParams.get("token"), ["open", "session"]);
  if ("problem" in checked) return refuse(res, 403, `Forbidden: ${checked.problem}`);
  const body = await boundedBody(req, MAX_LICENCE_REQUEST_BYTES);
  if (body === null) return refuse(res, 413, `A licence request is at most ${MAX_LICENCE_REQUEST_BYTES} bytes`);
  let asked: z.infer<typeof LicenceRequest>;
  try {
    asked = LicenceRequest.parse(JSON.parse(body.toString("utf8")));
  } catch {
    return refuse(res, 400, 'A ClearKey licence request is JSON: {"kids": ["<base64url key id>"]}');
  }
  const video = await deps.db.video.findUnique({
    where: { id: videoId },
    select: { contentProtection: true, contentKey: { select: { keyId: true, sealedKey: true } } },
  });
  if (video?.contentProtection !== "CENC" || !video.contentKey) return refuse(res, 404, "Not found");
  let contentKey: Buffer;
  try {
    contentKey = deps.contentKeys.open(video.contentKey);
  } catch {
    return refuse(res, 500, "The video's key cannot be opened with this service's SIGNING_SECRET");
  }
  const { keyId, key } = cencKey(contentKey);
  const kid = keyId.toString("base64url");
  if (!asked.kids.includes(kid)) return refuse(res, 404, "No key of this video is asked for");
  const answer = Buffer.from(
    JSON.stringify({
      keys: [{ kty: "oct", kid, k: key.toString("base64url") }],
      type: asked.type === "persistent-license" ? "persistent-license" : "temporary",
    }),
  );
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": answer.byteLength,
    "cache-control": "private, no-store",
    "access-control-allow-origin": "*",
  });
  res.end(answer);
}
