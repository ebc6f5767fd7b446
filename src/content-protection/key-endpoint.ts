import type { IncomingMessage, ServerResponse } from "node:http";
import type { Db } from "../db/client.ts";
import type { PlaybackTokens } from "../http/playback-tokens.ts";
import { isUuid } from "../ids.ts";
import { segmentGroupKey } from "../shared/segment-keys.ts";
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
