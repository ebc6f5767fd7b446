import { Player } from "../player.tsx";
import { useTitle } from "../router.tsx";

/**
 * The public, shareable page of a video: no sign-in. A PUBLIC video's HLS is served to anyone; a
 * SIGNED one plays only with the token its share link carries (`?token=`). The embed snippet's
 * options come as `autoplay=1`, `muted=1`, `loop=1` and `t=<seconds>`.
 */
export function WatchPage({ videoId, params }: { videoId: string; params: URLSearchParams }) {
  useTitle("Watch");
  const token = params.get("token");
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  const base = `/media/videos/${encodeURIComponent(videoId)}`;
  const start = Number(params.get("t"));
  const autoplay = params.get("autoplay") === "1";
  return (
    <main class="watch">
      {/* The title is not readable signed out; the page that embeds this names the frame. */}
      <Player
        src={`${base}/hls/master.m3u8${query}`}
        poster={`${base}/thumbnails/poster.jpg${query}`}
        title="shared video"
        autoplay={autoplay}
        // Browsers refuse to autoplay with sound.
        muted={autoplay || params.get("muted") === "1"}
        loop={params.get("loop") === "1"}
        startTime={Number.isFinite(start) && start > 0 ? start : undefined}
      />
    </main>
  );
}
