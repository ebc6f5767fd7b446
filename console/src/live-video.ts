import { useEffect, useRef, useState } from "preact/hooks";
import { type ResultOf, request, subscribe } from "./graphql.ts";
import type { VideoFields } from "./operations.ts";
import { VideoEventsSubscription, VideoPlaybackUrlQuery, VideoQueuePositionQuery } from "./operations.ts";
import type { QueuePosition } from "./queue.tsx";

export type Video = ResultOf<typeof VideoFields>;

/** A fresh URL to play the video from: a SIGNED video's player asks for one when its session ends. */
export const freshPlaybackUrl = (videoId: string): Promise<string | null> =>
  request(VideoPlaybackUrlQuery, { id: videoId }).then((data) => data.video?.playbackUrl ?? null);

/**
 * The URL a player of the video plays from: a SIGNED video's events (and a live stream's, about once
 * a second) each carry a fresh token, and a new URL would load the player again; it keeps the one it
 * started with while the video is the same (a session that ends is renewed by the player itself).
 */
export function usePlaybackUrl(video: { playbackUrl?: string | null } | null | undefined): string | null {
  const playback = useRef<string | null>(null);
  if (video?.playbackUrl && playback.current?.split("?")[0] !== video.playbackUrl.split("?")[0]) {
    playback.current = video.playbackUrl;
  }
  return playback.current;
}

/** fps, speed and ETA of a variant from its latest progress event. */
interface VariantRate {
  fps: number | null;
  speed: number | null;
  etaSeconds: number | null;
}

/** The render that makes the source (animations, questions), before the ladder. */
interface RenderProgress {
  index: number;
  count: number | null;
  percent: number;
  description: string | null;
  renderedCount: number;
  cachedCount: number;
}

export interface LiveVideo {
  /** Its variants' progress is the newest their events told (see `withEventProgress`). */
  video: Video | null;
  rates: Record<string, VariantRate>;
  /** Each encoding variant's progress from its newest progress event, by variant id. */
  progress: Record<string, number>;
  render: RenderProgress | null;
  /** Where the video waits while QUEUED; null otherwise (or before it is known). */
  queue: QueuePosition | null;
  error: string | null;
}

/**
 * A video followed over `videoEvents`: every event carries the whole video, progress events add
 * fps, speed and ETA per variant, render events the render's step. Ends with the subscription
 * (after READY, FAILED, CANCELED or DISCARDED). While the video is QUEUED, its place in line is read once, then
 * follows the QueuePositionEvents.
 */
export function useLiveVideo(videoId: string | null, initial: Video | null = null): LiveVideo {
  const empty = { rates: {}, progress: {}, render: null, queue: null, error: null };
  const [state, setState] = useState<LiveVideo>({ video: initial, ...empty });
  useEffect(() => {
    setState({ video: initial, ...empty });
    if (!videoId) return;
    return subscribe(
      VideoEventsSubscription,
      { videoId },
      {
        next: ({ videoEvents: event }) =>
          setState((previous) => {
            const next: LiveVideo = { ...previous, error: null };
            if (event.__typename === "QueuePositionEvent") next.queue = event.position;
            else if (event.video.status !== "QUEUED") next.queue = null;
            if (event.__typename === "VariantProgressEvent") {
              next.rates = {
                ...previous.rates,
                [event.variant.id]: { fps: event.fps, speed: event.speed, etaSeconds: event.etaSeconds },
              };
              next.progress = { ...previous.progress, [event.variant.id]: event.variant.progress };
            }
            [next.video, next.progress] = withEventProgress(event.video, next.progress);
            if (event.__typename === "RenderProgressEvent") {
              next.render = {
                index: event.index,
                count: event.count,
                percent: event.percent,
                description: event.description,
                renderedCount: event.renderedCount,
                cachedCount: event.cachedCount,
              };
            }
            return next;
          }),
        error: (err) => setState((previous) => ({ ...previous, error: err.message })),
      },
    );
  }, [videoId]);
  // A video that is (or just turned) QUEUED: where does it stand? A job joining the end of the queue
  // moves nobody, so no event says it; ask once.
  const queued = state.video?.status === "QUEUED" && state.queue === null;
  useEffect(() => {
    if (!videoId || !queued) return;
    let current = true;
    request(VideoQueuePositionQuery, { id: videoId })
      .then(({ video }) => {
        const position = video?.queuePosition;
        if (current && position) setState((previous) => (previous.queue ? previous : { ...previous, queue: position }));
      })
      .catch(() => undefined);
    return () => {
      current = false;
    };
  }, [videoId, queued]);
  return state;
}

/**
 * The video with each encoding variant's progress from its newest progress event: an event's
 * `video.variants` are read from the database, where progress is written a few times a minute,
 * while every progress event carries the encoder's figure. Progress kept for a variant that is no
 * longer encoding (done, failed, or back to pending for a retry) is dropped.
 */
function withEventProgress(video: Video, progress: Record<string, number>): [Video, Record<string, number>] {
  const kept: Record<string, number> = {};
  const variants = video.variants.map((variant) => {
    const latest = progress[variant.id];
    if (latest === undefined || variant.status !== "ENCODING") return variant;
    kept[variant.id] = latest;
    return latest > variant.progress ? { ...variant, progress: latest } : variant;
  });
  return [{ ...video, variants }, kept];
}
