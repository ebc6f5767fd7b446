import { useEffect, useRef, useState } from "preact/hooks";
import { formatDate, formatDuration, isFinished } from "../format.ts";
import { request } from "../graphql.ts";
import { freshPlaybackUrl, useLiveVideo, usePlaybackUrl, type Video } from "../live-video.ts";
import {
  CancelVideoMutation,
  DeleteVideoMutation,
  RetryVariantMutation,
  VideoQuery,
  VideoStoryboardQuery,
} from "../operations.ts";
import { Player } from "../player.tsx";
import type { StoryboardProps } from "../storyboard-scrubber.tsx";
import { Link, navigate, useTitle } from "../router.tsx";
import { VideoImages } from "../video-images.tsx";
import { VideoAnalytics } from "../viewer-analytics.tsx";
import { AudioTracks } from "./video/audio-tracks.tsx";
import { Captions } from "./video/captions.tsx";
import { Chapters, useChapters } from "./video/chapters.tsx";
import { ClipForm } from "./video/clip-form.tsx";
import { Details } from "./video/details.tsx";
import { Downloads } from "./video/downloads.tsx";
import { Operators } from "./video/operators.tsx";
import { Progress } from "./video/progress.tsx";
import { Share } from "./video/share.tsx";

/**
 * The storyboard for the player's scrub bar: read when the video turns playable or changes state
 * (the worker makes it after the first rungs), null while it has none.
 */
function useStoryboard(videoId: string, video: Video | null | undefined): StoryboardProps | null {
  const [storyboard, setStoryboard] = useState<{ vttUrl: string; intervalSeconds: number } | null>(null);
  const playable = video?.playable ?? false;
  useEffect(() => {
    if (!playable) return;
    request(VideoStoryboardQuery, { id: videoId })
      .then((data) => setStoryboard(data.video?.storyboard ?? null))
      .catch(() => setStoryboard(null));
  }, [videoId, playable, video?.status]);
  const duration = video?.duration;
  return storyboard && duration ? { ...storyboard, duration } : null;
}

/** One video: live progress, the player, sharing, and for operators its variants, jobs and runs. */
export function VideoPage({ videoId }: { videoId: string }) {
  const [initial, setInitial] = useState<Video | null | undefined>(undefined);
  const [message, setMessage] = useState<string | null>(null);
  useEffect(() => {
    request(VideoQuery, { id: videoId })
      .then((data) => setInitial(data.video))
      .catch((err: Error) => setMessage(err.message));
  }, [videoId]);
  const live = useLiveVideo(initial ? videoId : null, initial ?? null);
  // A finished video's subscription has ended: a title saved here is shown without waiting for an event.
  const [saved, setSaved] = useState<{ id: string; title: string } | null>(null);
  const latest = live.video ?? initial;
  const video = latest && saved?.id === videoId ? { ...latest, title: saved.title } : latest;
  useTitle(initial === null ? "No such video" : video?.title);
  const playback = usePlaybackUrl(video);
  const playerElement = useRef<HTMLVideoElement | null>(null);
  const storyboard = useStoryboard(videoId, video);
  const { chapters, reload: reloadChapters } = useChapters(videoId, video?.playable ?? false, video?.status);

  if (initial === null) return <p role="alert">No such video.</p>;
  if (!video) return <p>{message ?? "Loading…"}</p>;

  const act = async (label: string, run: () => Promise<{ __typename: string; message?: string }>) => {
    setMessage(null);
    try {
      const result = await run();
      if ("message" in result && result.message) setMessage(`${label}: ${result.message}`);
      return result;
    } catch (err) {
      setMessage(`${label}: ${(err as Error).message}`);
      return null;
    }
  };
  const audio = video.variants.find((v) => v.kind === "AUDIO" && v.playlistUrl);

  return (
    <article aria-labelledby="video-title">
      <h1 id="video-title">{video.title}</h1>
      <p class="muted">
        {video.source.toLowerCase()} · {video.playbackPolicy.toLowerCase()} · {formatDuration(video.duration)}
        {video.width ? ` · ${video.width}×${video.height}` : ""} · created {formatDate(video.createdAt)}
      </p>
      <div class="actions">
        {!isFinished(video.status) && (
          <button
            type="button"
            onClick={() =>
              act("Cancel", async () => (await request(CancelVideoMutation, { id: video.id })).cancelVideo)
            }
          >
            Cancel
          </button>
        )}
        <button
          type="button"
          class="danger"
          onClick={async () => {
            if (!confirm(`Delete "${video.title}" and all its media?`)) return;
            const result = await act(
              "Delete",
              async () => (await request(DeleteVideoMutation, { id: video.id })).deleteVideo,
            );
            if (result?.__typename === "DeleteVideoSuccess") navigate("/");
          }}
        >
          Delete
        </button>
      </div>
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
      {live.error && <p class="warning">Live updates: {live.error}</p>}
      {video.playable && playback ? (
        <Player
          src={playback}
          poster={video.posterUrl}
          audioPlaylist={audio?.playlistUrl}
          title={video.title}
          element={playerElement}
          storyboard={storyboard}
          chapters={chapters}
          renewSource={() => freshPlaybackUrl(videoId)}
          clearKey={video.contentProtection?.method === "CENC"}
        />
      ) : (
        video.posterUrl && <img class="poster" src={video.posterUrl} alt="" />
      )}
      <Progress live={{ ...live, video }} />
      {video.status === "FAILED" && (video.source === "MANIM" || video.source === "COMPOSITION") && (
        <p>
          <Link href={video.source === "MANIM" ? "/sources#manim-code" : "/sources#quiz-csv"} class="button">
            Edit and retry
          </Link>{" "}
          <span class="muted">(the form holds what this tab last sent)</span>
        </p>
      )}
      <Details videoId={video.id} onSaved={(title) => setSaved({ id: video.id, title })} />
      {video.status === "READY" && <ClipForm video={video} player={playerElement} />}
      {video.status === "READY" && video.duration != null && (
        <VideoImages videoId={video.id} duration={video.duration} player={playerElement} />
      )}
      <Captions videoId={video.id} />
      <AudioTracks videoId={video.id} />
      {video.duration != null && (
        <Chapters videoId={video.id} chapters={chapters?.list ?? []} onSaved={() => void reloadChapters()} />
      )}
      <Downloads videoId={video.id} status={video.status} />
      {video.playable && <Share video={video} />}
      {video.playable && <VideoAnalytics videoId={video.id} />}
      <Operators
        video={video}
        onRetry={(id) => act("Retry", async () => (await request(RetryVariantMutation, { id })).retryVariant)}
      />
    </article>
  );
}
