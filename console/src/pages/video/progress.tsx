import { formatBytes } from "../../upload.ts";
import { formatDuration, formatPercent, statusLabel } from "../../format.ts";
import { freshPlaybackUrl, type LiveVideo, useLiveVideo, usePlaybackUrl, type Video } from "../../live-video.ts";
import { Player } from "../../player.tsx";
import { QueuePlace } from "../../queue.tsx";

/**
 * Status, render progress and the ladder's: one bar per variant with fps, speed and ETA, or where
 * `summary` says so, one bar for the encode (the rungs are encoded together, in step) with each
 * rung's segments ready.
 */
export function Progress({ live, summary = false }: { live: LiveVideo; summary?: boolean }) {
  const { video, rates, render, queue } = live;
  if (!video) return null;
  const encoding = video.variants.some((v) => v.status !== "PENDING");
  return (
    <div class="progress" aria-live="polite">
      <p>
        <span class={`status status-${video.status.toLowerCase()}`} data-testid="video-status">
          {statusLabel(video.status)}
        </span>{" "}
        {video.playable && (
          <span class="badge" data-testid="playable">
            playable
          </span>
        )}{" "}
        {video.status === "QUEUED" && queue && <QueuePlace position={queue} />}
      </p>
      {video.error && (
        <p role="alert" class="error">
          {video.error}
        </p>
      )}
      {video.status === "WAITING_FOR_UPLOAD" && video.uploadSize != null && (
        <label class="bar">
          <span>
            Uploaded {formatBytes(video.uploadedBytes)} of {formatBytes(video.uploadSize)}
          </span>
          <progress max={video.uploadSize} value={video.uploadedBytes} />
        </label>
      )}
      {render && !encoding && (
        <label class="bar" data-testid="render-progress">
          <span>
            Rendering {render.count ? `${render.index + 1} of ${render.count}` : `#${render.index + 1}`}
            {render.description ? `: ${render.description}` : ""} ({Math.floor(render.percent)}%)
            {render.cachedCount > 0 ? ` · ${render.cachedCount} from cache` : ""}
          </span>
          <progress
            max={1}
            value={render.count ? (Math.min(render.index, render.count - 1) + render.percent / 100) / render.count : 0}
          />
        </label>
      )}
      {video.variants.length > 0 && summary && <EncodeBar video={video} rates={rates} />}
      {video.variants.length > 0 && !summary && (
        <ul class="variants" aria-label="Variants">
          {video.variants.map((variant) => {
            const rate = rates[variant.id];
            return (
              <li key={variant.id} data-testid="variant" data-variant={variant.name}>
                <label class="bar">
                  <span>
                    {variant.name} · {statusLabel(variant.status)} · {formatPercent(variant.progress)}
                    {variant.status === "ENCODING" && rate && (
                      <span class="muted">
                        {rate.fps != null && ` · ${Math.round(rate.fps)} fps`}
                        {rate.speed != null && ` · ${rate.speed.toFixed(2)}×`}
                        {rate.etaSeconds != null && ` · ETA ${formatDuration(rate.etaSeconds)}`}
                      </span>
                    )}
                  </span>
                  <progress max={1} value={variant.progress} data-testid="variant-progress" />
                </label>
                {variant.error && <p class="error">{variant.error}</p>}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

/** fps, speed and ETA of the encode, from one rung's latest progress event (the rungs go in step). */
function rateLabel(rate: LiveVideo["rates"][string] | undefined): string {
  if (!rate) return "";
  return [
    rate.fps != null ? `${Math.round(rate.fps)} fps` : "",
    rate.speed != null ? `${rate.speed.toFixed(2)}×` : "",
    rate.etaSeconds != null ? `ETA ${formatDuration(rate.etaSeconds)}` : "",
  ]
    .filter(Boolean)
    .map((part) => ` · ${part}`)
    .join("");
}

/**
 * Where a rung stands. Segment counts are written with the progress, about once a second; a video
 * turns playable once every rung has its first segment, which may be before the count says so.
 */
function rungState(variant: Video["variants"][number], playable: boolean): string {
  if (variant.status === "FAILED") return "failed";
  if (variant.status === "READY") return "done";
  const n = variant.segmentCount;
  if (n > 0) return `${n} segment${n === 1 ? "" : "s"} ready`;
  return playable || variant.playlistUrl ? "first segment ready" : "no segment yet";
}

/** One bar for the whole ladder and, per rung, the segments it has ready (a player needs one). */
function EncodeBar({ video, rates }: { video: Video; rates: LiveVideo["rates"] }) {
  const rungs = video.variants.filter((v) => v.status !== "FAILED");
  const progress = rungs.length ? rungs.reduce((sum, v) => sum + v.progress, 0) / rungs.length : 0;
  const ready = video.variants.filter((v) => v.status === "READY").length;
  const rate = video.variants.map((v) => rates[v.id]).find(Boolean);
  return (
    <>
      <label class="bar">
        <span>
          Encoding {formatPercent(progress)} · {ready} of {video.variants.length} rungs ready
          <span class="muted">{rateLabel(rate)}</span>
        </span>
        <progress max={1} value={progress} data-testid="encode-progress" />
      </label>
      <ul class="rungs" aria-label="Rungs">
        {video.variants.map((v) => (
          <li key={v.id} data-testid="rung" data-variant={v.name} class={`rung rung-${v.status.toLowerCase()}`}>
            {v.name}: {rungState(v, video.playable)}
          </li>
        ))}
      </ul>
    </>
  );
}

/** The upload page's view of a video: status, one encode bar with each rung's segments, the player once playable. */
export function LiveSummary({ videoId }: { videoId: string }) {
  const live = useLiveVideo(videoId);
  const playback = usePlaybackUrl(live.video);
  const video = live.video;
  return (
    <>
      <Progress live={live} summary />
      {video?.playable && playback && (
        <Player
          src={playback}
          poster={video.posterUrl}
          title={video.title}
          renewSource={() => freshPlaybackUrl(videoId)}
        />
      )}
    </>
  );
}
