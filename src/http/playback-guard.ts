import type { Db } from "../db/client.ts";
import { isMasterPlaylistKey, videoKeyParts } from "../protocol/storage-layout.ts";
import type { PlaybackTokens } from "./playback-tokens.ts";

/** Who may read a video's media: its playback policy (null: no such video) and the token checker. */
export interface PlaybackGuard {
  policyOf(videoId: string): Promise<"PUBLIC" | "SIGNED" | null>;
  tokens: PlaybackTokens;
}

const POLICY_CACHE_MS = 60_000;
const MAX_CACHED_POLICIES = 50_000;

/** Media of SIGNED videos needs a token; a video's policy never changes, so it is cached. */
export function createPlaybackGuard(db: Db, tokens: PlaybackTokens): PlaybackGuard {
  const policies = new Map<string, { policy: "PUBLIC" | "SIGNED"; at: number }>();
  return {
    tokens,
    async policyOf(videoId) {
      const cached = policies.get(videoId);
      if (cached && Date.now() - cached.at < POLICY_CACHE_MS) return cached.policy;
      const video = await db.video
        .findUnique({ where: { id: videoId }, select: { playbackPolicy: true } })
        .catch(() => null);
      if (!video) return null;
      if (policies.size > MAX_CACHED_POLICIES) policies.clear();
      policies.set(videoId, { policy: video.playbackPolicy, at: Date.now() });
      return video.playbackPolicy;
    },
  };
}

/** What a media request may do: carry `token` into playlists ("" for a public video), or nothing. */
export type PlaybackAdmission =
  | { token: string }
  | { refused: "not found" }
  | { refused: "forbidden"; problem: string };

/**
 * Checks a request for the published object `key` against its video's playback policy. The master
 * playlist opens a playback session and takes only an opening token (the API's URLs); the URIs
 * inside carry a session token that ends PLAYBACK_SESSION_SECONDS after that opening, so a long
 * video keeps playing after the opening token expired. Variant playlists fetched with a session
 * token carry that same token on: replaying it never extends the session.
 */
export async function admitPlayback(guard: PlaybackGuard, key: string, url: URL): Promise<PlaybackAdmission> {
  const videoId = videoKeyParts(key)?.videoId;
  if (!videoId) return { refused: "not found" };
  const policy = await guard.policyOf(videoId);
  if (policy === null) return { refused: "not found" };
  if (policy === "PUBLIC") return { token: "" };
  const token = url.searchParams.get("token");
  const checked = guard.tokens.check(videoId, token, isMasterPlaylistKey(key) ? ["open"] : ["open", "session"]);
  if ("problem" in checked) return { refused: "forbidden", problem: checked.problem };
  return { token: key.endsWith(".m3u8") && checked.kind === "open" ? guard.tokens.startSession(videoId) : token! };
}
