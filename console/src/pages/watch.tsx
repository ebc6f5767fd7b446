import { Player } from "../player.tsx";

/**
 * The public, shareable page of a video: no sign-in. A PUBLIC video's HLS is served to anyone; a
 * SIGNED one plays only with the token its share link carries (`?token=`).
 */
export function WatchPage({ videoId, token }: { videoId: string; token: string | null }) {
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  const base = `/media/videos/${encodeURIComponent(videoId)}`;
  return (
    <main class="watch">
      <Player
        src={`${base}/hls/master.m3u8${query}`}
        poster={`${base}/thumbnails/poster.jpg${query}`}
        title={`video ${videoId}`}
      />
    </main>
  );
}
