import type { Db } from "../db/client.ts";
import { opensPlayback, videoKeyParts } from "../protocol/storage-layout.ts";
import type { PlaybackTokens } from "./playback-tokens.ts";
import type { ServedProtection } from "../content-protection/playlist-keys.ts";

/** A video as its media requests see it: its playback policy, and whether it is a live broadcast's. */
interface PlaybackVideo {
  policy: "PUBLIC" | "SIGNED";
  live: boolean;
  /** How its segments are encrypted; null: not encrypted. */
  protection: ServedProtection | null;
}

/** Who may read a video's media: the video (null: no such video) and the token checker. */
export interface PlaybackGuard {
  videoOf(videoId: string): Promise<PlaybackVideo | null>;
  tokens: PlaybackTokens;
}

const POLICY_CACHE_MS = 60_000;
const MAX_CACHED_POLICIES = 50_000;

/** Media of SIGNED videos needs a token; a video's policy, source and protection never change, so they are cached. */
export function createPlaybackGuard(db: Db, tokens: PlaybackTokens): PlaybackGuard {
  const videos = new Map<string, { video: PlaybackVideo; at: number }>();
  return {
    tokens,
    async videoOf(videoId) {
      const cached = videos.get(videoId);
      if (cached && Date.now() - cached.at < POLICY_CACHE_MS) return cached.video;
      const row = await db.video
        .findUnique({
          where: { id: videoId },
          select: { playbackPolicy: true, source: true, contentProtection: true, keyRotationSegments: true },
        })
        .catch(() => null);
      if (!row) return null;
      if (videos.size > MAX_CACHED_POLICIES) videos.clear();
      const { contentProtection: method, keyRotationSegments } = row;
      const protection = method === null ? null : { method, keyRotationSegments };
      const video = { policy: row.playbackPolicy, live: row.source === "LIVE", protection };
      videos.set(videoId, { video, at: Date.now() });
      return video;
    },
  };
}

/**
 * What a media request may do: carry `token` into playlists ("" for a public video), or nothing;
 * `live`: the video is a live broadcast's.
 */
export type PlaybackAdmission =
  | { token: string; live: boolean; protection: ServedProtection | null }
  | { refused: "not found" }
  | { refused: "forbidden"; problem: string };

/**
 * Checks a request for the published object `key` against its video's playback policy. The master
 * playlist (or the DASH MPD) opens a playback session and takes only an opening token (the API's URLs); the URIs
 * inside carry a session token that ends PLAYBACK_SESSION_SECONDS after that opening, so a long
 * video keeps playing after the opening token expired. Variant playlists fetched with a session
 * token carry that same token on: replaying it never extends the session.
 */
export async function admitPlayback(guard: PlaybackGuard, key: string, url: URL): Promise<PlaybackAdmission> {
  const videoId = videoKeyParts(key)?.videoId;
  if (!videoId) return { refused: "not found" };
  const video = await guard.videoOf(videoId);
  if (video === null) return { refused: "not found" };
  const { live, protection } = video;
  const token = url.searchParams.get("token");
  const namesMedia = key.endsWith(".m3u8") || key.endsWith(".mpd");
  if (video.policy === "PUBLIC") {
    // A protected public video's playlists carry a session token, which its key URIs need
    // (src/content-protection/key-endpoint.ts): the session a request carries on, else a new one.
    if (!protection || !key.endsWith(".m3u8")) return { token: "", live, protection };
    const carried = guard.tokens.check(videoId, token, ["session"]);
    return { token: "problem" in carried ? guard.tokens.startSession(videoId) : token!, live, protection };
  }
  const checked = guard.tokens.check(videoId, token, opensPlayback(key) ? ["open"] : ["open", "session"]);
  if ("problem" in checked) return { refused: "forbidden", problem: checked.problem };
  const carried = namesMedia && checked.kind === "open" ? guard.tokens.startSession(videoId) : token!;
  return { token: carried, live, protection };
}
