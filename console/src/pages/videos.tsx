import { useCallback, useEffect, useState } from "preact/hooks";
import { type ResultOf, request, subscribe } from "../graphql.ts";
import { formatDate, formatDuration, isFinished, statusLabel } from "../format.ts";
import { VideoEventsSubscription, VideosQuery } from "../operations.ts";
import { QueuePlace } from "../queue.tsx";
import { Link } from "../router.tsx";

const PAGE_SIZE = 12;
const STATUSES = ["WAITING_FOR_UPLOAD", "QUEUED", "PROCESSING", "READY", "FAILED", "CANCELED"] as const;
type Status = (typeof STATUSES)[number];
type Connection = ResultOf<typeof VideosQuery>["videos"];
type Page = { first?: number; after?: string; last?: number; before?: string };

/** The tenant's videos, newest first, a page at a time; videos still in progress update live. */
export function VideosPage() {
  const [status, setStatus] = useState<Status | "">("");
  const [page, setPage] = useState<Page>({ first: PAGE_SIZE });
  const [videos, setVideos] = useState<Connection | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(() => {
    request(VideosQuery, { ...page, status: status || null })
      .then((data) => {
        setVideos(data.videos);
        setError(null);
      })
      .catch((err: Error) => setError(err.message));
  }, [page, status]);
  useEffect(load, [load]);
  // New uploads from another tab or a CMS appear without a reload.
  useEffect(() => {
    const timer = setInterval(load, 15_000);
    return () => clearInterval(timer);
  }, [load]);

  const inProgress = (videos?.edges ?? []).map((e) => e.node).filter((v) => !isFinished(v.status));
  const followed = inProgress.map((v) => v.id).join(",");
  useEffect(() => {
    if (!followed) return;
    const stops = followed.split(",").map((videoId) =>
      subscribe(
        VideoEventsSubscription,
        { videoId },
        {
          next: ({ videoEvents }) =>
            setVideos((current) =>
              current
                ? {
                    ...current,
                    edges: current.edges.map((edge) =>
                      edge.node.id === videoId
                        ? {
                            ...edge,
                            node: {
                              ...edge.node,
                              ...videoEvents.video,
                              // The place in line comes with QueuePositionEvents and ends when the job starts.
                              queuePosition:
                                videoEvents.__typename === "QueuePositionEvent"
                                  ? videoEvents.position
                                  : videoEvents.video.status === "QUEUED"
                                    ? edge.node.queuePosition
                                    : null,
                            },
                          }
                        : edge,
                    ),
                  }
                : current,
            ),
        },
      ),
    );
    return () => {
      for (const stop of stops) stop();
    };
  }, [followed]);

  const pageInfo = videos?.pageInfo;
  return (
    <section aria-labelledby="videos-title">
      <div class="heading">
        <h1 id="videos-title">Videos</h1>
        <Link href="/upload" class="button">
          Upload
        </Link>
      </div>
      <label>
        Status{" "}
        <select
          value={status}
          onChange={(e) => {
            setStatus((e.target as HTMLSelectElement).value as Status | "");
            setPage({ first: PAGE_SIZE });
          }}
        >
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {statusLabel(s)}
            </option>
          ))}
        </select>
      </label>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {videos && videos.edges.length === 0 && <p>No videos yet. Upload one, or make one from a source.</p>}
      <ul class="videos" aria-label="Videos, newest first">
        {videos?.edges.map(({ node: v }) => (
          <li key={v.id} class="video-card" data-video-id={v.id}>
            <Link href={`/videos/${v.id}`}>
              {v.posterUrl ? (
                <img src={v.posterUrl} alt="" loading="lazy" width={160} height={90} />
              ) : (
                <div class="poster-placeholder" aria-hidden="true" />
              )}
              <span class="title">{v.title}</span>
            </Link>
            <span class={`status status-${v.status.toLowerCase()}`} data-testid="status">
              {statusLabel(v.status)}
            </span>
            {v.playable && v.status !== "READY" && <span class="badge">playable</span>}
            {v.status === "QUEUED" && v.queuePosition && <QueuePlace position={v.queuePosition} />}
            <span class="muted">
              {formatDuration(v.duration)} · {v.source.toLowerCase()} · {formatDate(v.createdAt)}
            </span>
          </li>
        ))}
      </ul>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={!pageInfo?.hasPreviousPage}
          onClick={() => setPage({ last: PAGE_SIZE, before: pageInfo?.startCursor ?? undefined })}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!pageInfo?.hasNextPage}
          onClick={() => setPage({ first: PAGE_SIZE, after: pageInfo?.endCursor ?? undefined })}
        >
          Older
        </button>
      </nav>
    </section>
  );
}
