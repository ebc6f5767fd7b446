import { CheckboxSet } from "../checkbox-set.tsx";
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { formatBytes } from "../upload.ts";
import { formatDate, formatDuration, formatPercent, formatVariantBitRate, isFinished, statusLabel } from "../format.ts";
import { ApiError, type ResultOf, request, runAndReload, useLatestReload } from "../graphql.ts";
import { freshPlaybackUrl, type LiveVideo, useLiveVideo, usePlaybackUrl, type Video } from "../live-video.ts";
import {
  AddCaptionMutation,
  CancelJobMutation,
  CancelVideoMutation,
  CreateClipMutation,
  DeleteVideoMutation,
  RemoveCaptionMutation,
  RequestStaticRenditionsMutation,
  RetryVariantMutation,
  UpdateCaptionMutation,
  UpdateVideoMutation,
  VideoCaptionsQuery,
  VideoCostQuery,
  VideoDetailsQuery,
  VideoJobsQuery,
  ChunkJobsQuery,
  VideoQuery,
  VideoStaticRenditionsQuery,
  VideoStoryboardQuery,
} from "../operations.ts";
import { Player } from "../player.tsx";
import type { StoryboardProps } from "../storyboard-scrubber.tsx";
import { QueuePlace } from "../queue.tsx";
import { Link, navigate, useTitle } from "../router.tsx";
import { VideoImages } from "../video-images.tsx";
import { VideoAnalytics } from "../viewer-analytics.tsx";
import { STATIC_RENDITIONS } from "../video-options.tsx";
import { Table } from "../table.tsx";

/**
 * Status, render progress and the ladder's: one bar per variant with fps, speed and ETA, or where
 * `summary` says so, one bar for the encode (the rungs are encoded together, in step) with each
 * rung's segments ready.
 */
function Progress({ live, summary = false }: { live: LiveVideo; summary?: boolean }) {
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
          renewSource={() => freshPlaybackUrl(videoId)}
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

type Details = NonNullable<ResultOf<typeof VideoDetailsQuery>["video"]>;
type DetailsDraft = {
  title: string;
  description: string;
  tags: string;
  externalId: string;
  metadata: { key: string; value: string }[];
};

const draftOf = (d: Details): DetailsDraft => ({
  title: d.title,
  description: d.description ?? "",
  tags: d.tags.join(", "),
  externalId: d.externalId ?? "",
  metadata: d.metadata.map(({ key, value }) => ({ key, value })),
});

/**
 * The CMS's fields (updateVideo): title, description, tags, externalId and metadata. The API's
 * ValidationError is shown under the field it names; anything else above the Save button.
 */
function Details({ videoId, onSaved }: { videoId: string; onSaved: (title: string) => void }) {
  const [draft, setDraft] = useState<DetailsDraft | null>(null);
  const [invalid, setInvalid] = useState<{ field: string; message: string } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    request(VideoDetailsQuery, { id: videoId })
      .then((data) => data.video && setDraft(draftOf(data.video)))
      .catch((err: Error) => setMessage(err.message));
  }, [videoId]);
  if (!draft) return message ? <p class="muted">{message}</p> : null;

  const change = (patch: Partial<DetailsDraft>) => {
    setDraft({ ...draft, ...patch });
    setMessage(null);
    setSaved(false);
  };
  const setEntry = (i: number, patch: Partial<DetailsDraft["metadata"][number]>) =>
    change({ metadata: draft.metadata.map((entry, j) => (j === i ? { ...entry, ...patch } : entry)) });
  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setInvalid(null);
    setMessage(null);
    setSaved(false);
    try {
      const { updateVideo: result } = await request(UpdateVideoMutation, {
        input: {
          id: videoId,
          title: draft.title,
          description: draft.description.trim() ? draft.description : null,
          tags: draft.tags
            .split(",")
            .map((tag) => tag.trim())
            .filter(Boolean),
          externalId: draft.externalId.trim() ? draft.externalId.trim() : null,
          metadata: draft.metadata.filter((entry) => entry.key || entry.value),
        },
      });
      if (result.__typename === "UpdateVideoSuccess") {
        setDraft(draftOf(result.video));
        setSaved(true);
        onSaved(result.video.title);
      } else if (result.__typename === "ValidationError") {
        setInvalid({ field: result.field, message: result.message });
      } else setMessage(result.message);
    } catch (err) {
      setMessage((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  // The field's error, under it, and the attributes that tie the field to it.
  const problem = (field: string) => (invalid?.field === field ? invalid.message : null);
  const described = (field: string) =>
    problem(field) ? { "aria-invalid": true, "aria-describedby": `details-${field}-error` } : {};
  const fieldError = (field: string) =>
    problem(field) ? (
      <p id={`details-${field}-error`} class="error" role="alert">
        {problem(field)}
      </p>
    ) : null;
  const known = ["title", "description", "tags", "externalId", "metadata"];

  return (
    <section aria-labelledby="details-title" class="details">
      <h2 id="details-title">Details</h2>
      <form onSubmit={save}>
        <label for="details-title-input">Title</label>
        <input
          id="details-title-input"
          value={draft.title}
          onInput={(e) => change({ title: (e.target as HTMLInputElement).value })}
          {...described("title")}
        />
        {fieldError("title")}
        <label for="details-description">Description</label>
        <textarea
          id="details-description"
          rows={3}
          value={draft.description}
          onInput={(e) => change({ description: (e.target as HTMLTextAreaElement).value })}
          {...described("description")}
        />
        {fieldError("description")}
        <label for="details-tags">Tags (comma-separated)</label>
        <input
          id="details-tags"
          value={draft.tags}
          onInput={(e) => change({ tags: (e.target as HTMLInputElement).value })}
          {...described("tags")}
        />
        {fieldError("tags")}
        <label for="details-external-id">External id (your CMS's)</label>
        <input
          id="details-external-id"
          value={draft.externalId}
          onInput={(e) => change({ externalId: (e.target as HTMLInputElement).value })}
          {...described("externalId")}
        />
        {fieldError("externalId")}
        <fieldset {...described("metadata")}>
          <legend>Metadata</legend>
          {draft.metadata.map((entry, i) => (
            <div key={i} class="metadata-row">
              <label for={`details-metadata-key-${i}`}>Key {i + 1}</label>
              <input
                id={`details-metadata-key-${i}`}
                value={entry.key}
                onInput={(e) => setEntry(i, { key: (e.target as HTMLInputElement).value })}
              />
              <label for={`details-metadata-value-${i}`}>Value {i + 1}</label>
              <input
                id={`details-metadata-value-${i}`}
                value={entry.value}
                onInput={(e) => setEntry(i, { value: (e.target as HTMLInputElement).value })}
              />
              <button
                type="button"
                class="secondary"
                aria-label={`Remove metadata entry ${i + 1}`}
                onClick={() => change({ metadata: draft.metadata.filter((_, j) => j !== i) })}
              >
                Remove
              </button>
            </div>
          ))}
          <button
            type="button"
            class="secondary"
            onClick={() => change({ metadata: [...draft.metadata, { key: "", value: "" }] })}
          >
            Add metadata entry
          </button>
          {fieldError("metadata")}
        </fieldset>
        {invalid && !known.includes(invalid.field) && (
          <p role="alert" class="error">
            {invalid.field}: {invalid.message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Save details
        </button>
        <p role="status" class="muted">
          {saved ? "Saved." : ""}
        </p>
        {message && (
          <p role="alert" class="error">
            {message}
          </p>
        )}
      </form>
    </section>
  );
}

/**
 * Cuts a clip (createClip) from a range of this READY video; *Set start* and *Set end* take the
 * player's current time. The clip opens on its own page, which follows its encode.
 */
function ClipForm({ video, player }: { video: Video; player: { current: HTMLVideoElement | null } }) {
  const [range, setRange] = useState({ start: "", end: "" });
  const [title, setTitle] = useState("");
  const [invalid, setInvalid] = useState<{ field: string; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const now = () => (player.current ? String(Math.round(player.current.currentTime * 1000) / 1000) : null);
  const problem = (field: string) => (invalid?.field === field ? invalid.message : null);
  const bound = (field: "start" | "end", label: string) => (
    <div class="clip-bound">
      <label for={`clip-${field}`}>{label} (seconds)</label>
      <input
        id={`clip-${field}`}
        type="number"
        min={0}
        step="any"
        required
        value={range[field]}
        onInput={(e) => setRange({ ...range, [field]: (e.target as HTMLInputElement).value })}
        {...(problem(field) ? { "aria-invalid": true, "aria-describedby": `clip-${field}-error` } : {})}
      />
      <button
        type="button"
        class="secondary"
        disabled={!video.playable}
        onClick={() => {
          const at = now();
          if (at !== null) setRange({ ...range, [field]: at });
        }}
      >
        Set {field}
      </button>
      {problem(field) && (
        <p id={`clip-${field}-error`} role="alert" class="error">
          {problem(field)}
        </p>
      )}
    </div>
  );
  return (
    <section aria-labelledby="clip-title" class="clip">
      <h2 id="clip-title">Clip</h2>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setInvalid(null);
          try {
            const { createClip: result } = await request(CreateClipMutation, {
              input: {
                sourceVideoId: video.id,
                start: Number(range.start),
                end: Number(range.end),
                ...(title.trim() && { title }),
              },
            });
            if (result.__typename === "CreateClipSuccess") navigate(`/videos/${result.video.id}`);
            else setInvalid({ field: "field" in result ? result.field : "", message: result.message });
          } catch (err) {
            setInvalid({ field: "", message: (err as Error).message });
          } finally {
            setBusy(false);
          }
        }}
      >
        <p class="muted">Play to a moment, then set the start or the end there, or type the seconds.</p>
        {bound("start", "Start")}
        {bound("end", "End")}
        <label for="clip-title-input">Clip title (default: this video's, with “(clip)”)</label>
        <input id="clip-title-input" value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        {invalid && invalid.field !== "start" && invalid.field !== "end" && (
          <p role="alert" class="error">
            {invalid.field ? `${invalid.field}: ` : ""}
            {invalid.message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create clip
        </button>
      </form>
    </section>
  );
}

type Caption = NonNullable<ResultOf<typeof VideoCaptionsQuery>["video"]>["captions"][number];

/** The flags beside a track's name; the default track has its own badge. */
const captionFlags = (c: Caption) => [c.forced && "forced", c.hearingImpaired && "SDH"].filter(Boolean).join(", ");

/**
 * The video's caption tracks (WebVTT or SRT files, which players list from the master playlist):
 * add one from a file, make one the default, rename one, remove one.
 */
function Captions({ videoId }: { videoId: string }) {
  const [captions, setCaptions] = useState<Caption[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [form, setForm] = useState({ name: "", language: "", isDefault: false, forced: false, sdh: false });
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  // The track being renamed, the name typed for it, and the API's refusal of it.
  const [renaming, setRenaming] = useState<{ id: string; name: string; error?: string } | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const load = useLatestReload(
    () => request(VideoCaptionsQuery, { id: videoId }),
    (data) => setCaptions(data.video?.captions ?? []),
    (err) => setMessage(err.message),
  );
  useEffect(() => {
    void load();
  }, [videoId]);

  const add = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setMessage(null);
    try {
      // An InvalidCaptionsError's message names its line.
      const { addCaption: result } = await request(AddCaptionMutation, {
        input: {
          videoId,
          name: form.name,
          language: form.language,
          text: await file.text(),
          default: form.isDefault,
          forced: form.forced,
          hearingImpaired: form.sdh,
        },
      });
      if (result.__typename === "AddCaptionSuccess") {
        setForm({ name: "", language: "", isDefault: false, forced: false, sdh: false });
        setFile(null);
        if (fileInput.current) fileInput.current.value = "";
      } else if (result.__typename === "ValidationError") setMessage(`${result.field}: ${result.message}`);
      else setMessage(result.message);
    } catch (err) {
      setMessage((err as Error).message);
    } finally {
      setBusy(false);
    }
    await load();
  };
  const update = (id: string, input: { name?: string; default?: boolean }) =>
    runAndReload(
      async () => {
        const result = (await request(UpdateCaptionMutation, { id, input })).updateCaption;
        if (result.__typename === "UpdateCaptionSuccess") setRenaming(null);
        // A refused name is shown in the rename form, beside the name.
        if (result.__typename === "ValidationError" && input.name !== undefined) {
          setRenaming({ id, name: input.name, error: result.message });
          return { __typename: result.__typename };
        }
        return result;
      },
      setMessage,
      load,
    );
  const check = (name: "isDefault" | "forced" | "sdh", label: string) => (
    <label class="check">
      <input
        type="checkbox"
        checked={form[name]}
        onChange={(e) => setForm({ ...form, [name]: (e.target as HTMLInputElement).checked })}
      />
      {label}
    </label>
  );

  return (
    <section aria-labelledby="captions-title" class="captions">
      <h2 id="captions-title">Captions</h2>
      {captions?.length === 0 && <p class="muted">No caption tracks.</p>}
      {captions && captions.length > 0 && (
        <ul aria-label="Caption tracks">
          {captions.map((c) => (
            <li key={c.id} data-testid="caption" data-default={c.default}>
              <a href={c.url}>{c.name}</a>{" "}
              {c.default && (
                <span class="badge" data-testid="default-caption">
                  default
                </span>
              )}{" "}
              <span class="muted">
                · {c.language} · {c.cueCount} cue{c.cueCount === 1 ? "" : "s"}
                {captionFlags(c) ? ` · ${captionFlags(c)}` : ""}
              </span>{" "}
              {!c.default && (
                <button
                  type="button"
                  class="secondary"
                  aria-label={`Make ${c.name} the default track`}
                  onClick={() => update(c.id, { default: true })}
                >
                  Make default
                </button>
              )}{" "}
              {renaming?.id === c.id ? (
                <form
                  class="caption-rename"
                  aria-label={`Rename caption ${c.name}`}
                  onSubmit={(e) => {
                    e.preventDefault();
                    void update(c.id, { name: renaming.name });
                  }}
                >
                  <label for={`caption-rename-${c.id}`}>New name for {c.name}</label>
                  <input
                    id={`caption-rename-${c.id}`}
                    required
                    value={renaming.name}
                    onInput={(e) => setRenaming({ id: c.id, name: (e.target as HTMLInputElement).value })}
                    {...(renaming.error
                      ? { "aria-invalid": true, "aria-describedby": `caption-rename-${c.id}-error` }
                      : {})}
                  />
                  {renaming.error && (
                    <p id={`caption-rename-${c.id}-error`} class="error" role="alert">
                      {renaming.error}
                    </p>
                  )}
                  <button type="submit">Save name</button>
                  <button type="button" class="secondary" onClick={() => setRenaming(null)}>
                    Cancel
                  </button>
                </form>
              ) : (
                <button
                  type="button"
                  class="secondary"
                  aria-label={`Rename caption ${c.name}`}
                  onClick={() => setRenaming({ id: c.id, name: c.name })}
                >
                  Rename
                </button>
              )}{" "}
              <button
                type="button"
                class="secondary"
                aria-label={`Remove caption ${c.name}`}
                onClick={async () => {
                  if (!confirm(`Remove the caption track "${c.name}"?`)) return;
                  await runAndReload(
                    async () => (await request(RemoveCaptionMutation, { id: c.id })).removeCaption,
                    setMessage,
                    load,
                  );
                }}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <form onSubmit={add} aria-label="Add a caption track">
        <label for="caption-file">Caption file (WebVTT or SRT, at most 1 MiB)</label>
        <input
          id="caption-file"
          ref={fileInput}
          type="file"
          accept=".vtt,.srt,text/vtt"
          required
          onChange={(e) => {
            const chosen = (e.target as HTMLInputElement).files?.[0] ?? null;
            setFile(chosen);
            if (chosen && !form.name) setForm({ ...form, name: chosen.name.replace(/\.[^.]+$/, "") });
          }}
        />
        <label for="caption-name">Track name (as players list it)</label>
        <input
          id="caption-name"
          required
          value={form.name}
          onInput={(e) => setForm({ ...form, name: (e.target as HTMLInputElement).value })}
        />
        <label for="caption-language">Language (BCP-47, e.g. en, de-CH)</label>
        <input
          id="caption-language"
          required
          value={form.language}
          onInput={(e) => setForm({ ...form, language: (e.target as HTMLInputElement).value })}
        />
        {check("isDefault", "Default track (players show it unless the viewer chose otherwise)")}
        {check("forced", "Forced (only the cues shown with subtitles off)")}
        {check("sdh", "For the deaf and hard of hearing (SDH)")}
        {message && (
          <p role="alert" class="error">
            {message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Add caption
        </button>
      </form>
    </section>
  );
}

type Rendition = NonNullable<ResultOf<typeof VideoStaticRenditionsQuery>["video"]>["staticRenditions"][number];

/** A rendition's state in words: its size and a download link once READY, its reason once FAILED or SKIPPED. */
function RenditionState({ rendition: r }: { rendition: Rendition }) {
  if (r.status === "READY") {
    return (
      <>
        {statusLabel(r.status)}
        <span class="muted">
          {r.width ? ` · ${r.width}×${r.height}` : ""}
          {r.sizeBytes != null ? ` · ${formatBytes(r.sizeBytes)}` : ""}
        </span>
        {r.downloadUrl && (
          <>
            {" · "}
            <a href={r.downloadUrl} download>
              Download
            </a>
          </>
        )}
      </>
    );
  }
  return (
    <>
      {statusLabel(r.status)}
      {r.status === "PREPARING" && <span class="muted"> (made once the video is ready)</span>}
      {r.error && <span class="error"> · {r.error}</span>}
    </>
  );
}

/**
 * The static renditions (MP4 and M4A files for downloads): each one's state, and asking for more
 * (requestStaticRenditions; a FAILED one may be asked for again). Read again while one is PREPARING.
 */
function Downloads({ videoId, status }: { videoId: string; status: Video["status"] }) {
  const [renditions, setRenditions] = useState<Rendition[] | null>(null);
  const [wanted, setWanted] = useState<Rendition["name"][]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const load = useLatestReload(
    () => request(VideoStaticRenditionsQuery, { id: videoId }),
    (data) => setRenditions(data.video?.staticRenditions ?? []),
    (err) => setMessage(err.message),
  );
  // The video's status is a dependency: its turning READY is when the renditions are made.
  useEffect(() => {
    void load();
  }, [videoId, status]);
  const preparing = renditions?.some((r) => r.status === "PREPARING") ?? false;
  useEffect(() => {
    if (!preparing) return;
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, [videoId, preparing]);
  if (!renditions) return null;

  const byName = new Map(renditions.map((r) => [r.name, r]));
  const askable = STATIC_RENDITIONS.filter(([name]) => !byName.has(name) || byName.get(name)?.status === "FAILED");
  return (
    <section aria-labelledby="downloads-title" class="downloads">
      <h2 id="downloads-title">Downloads</h2>
      {renditions.length === 0 ? (
        <p class="muted">No static renditions asked for.</p>
      ) : (
        <ul aria-label="Static renditions">
          {STATIC_RENDITIONS.filter(([name]) => byName.has(name)).map(([name, label]) => (
            <li key={name} data-testid="static-rendition" data-name={name}>
              {label}: <RenditionState rendition={byName.get(name) as Rendition} />
            </li>
          ))}
        </ul>
      )}
      {askable.length > 0 && (
        <form
          aria-label="Request static renditions"
          onSubmit={async (e) => {
            e.preventDefault();
            if (wanted.length === 0) return;
            await runAndReload(
              async () => {
                const result = (await request(RequestStaticRenditionsMutation, { videoId, names: wanted }))
                  .requestStaticRenditions;
                if (result.__typename === "RequestStaticRenditionsSuccess") setWanted([]);
                return result;
              },
              setMessage,
              load,
            );
          }}
        >
          <CheckboxSet legend="Make more" options={askable} value={wanted} onChange={setWanted} />
          <button type="submit" disabled={wanted.length === 0}>
            Request downloads
          </button>
        </form>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
    </section>
  );
}

/** The HTML that embeds `src` at the page's width, 16:9, titled for assistive technology. */
function embedSnippet(src: string, title: string): string {
  const escaped = title.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  return (
    `<div style="position:relative;width:100%;aspect-ratio:16/9">` +
    `<iframe src="${src.replace(/&/g, "&amp;")}" title="${escaped}" allow="autoplay; fullscreen; picture-in-picture" ` +
    `allowfullscreen style="position:absolute;inset:0;width:100%;height:100%;border:0"></iframe></div>`
  );
}

/** The public watch page and an embed snippet; a SIGNED video's link carries a short-lived token. */
function Share({ video }: { video: Video }) {
  const token = video.playbackUrl ? new URL(video.playbackUrl, location.href).searchParams.get("token") : null;
  const watch = `${location.origin}/watch/${video.id}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  const [options, setOptions] = useState({ autoplay: false, muted: false, loop: false, start: "" });
  const src = new URL(watch);
  for (const name of ["autoplay", "muted", "loop"] as const) if (options[name]) src.searchParams.set(name, "1");
  const start = Number(options.start);
  if (options.start && Number.isFinite(start) && start > 0) src.searchParams.set("t", String(start));
  const embed = embedSnippet(src.href, video.title);
  const [copied, setCopied] = useState(false);
  const check = (name: "autoplay" | "muted" | "loop", label: string) => (
    <label class="check">
      <input
        type="checkbox"
        checked={options[name]}
        onChange={(e) => {
          setCopied(false);
          setOptions({ ...options, [name]: (e.target as HTMLInputElement).checked });
        }}
      />
      {label}
    </label>
  );
  return (
    <section aria-labelledby="share-title" class="share">
      <h2 id="share-title">Share</h2>
      {video.playbackPolicy === "SIGNED" && (
        <p class="muted">SIGNED video: this link and snippet carry a playback token that expires.</p>
      )}
      <p>
        <a href={watch} data-testid="watch-link">
          {watch}
        </a>
      </p>
      <fieldset>
        <legend>Embed options</legend>
        {check("autoplay", "Autoplay (muted: browsers allow autoplay only without sound)")}
        {check("muted", "Muted")}
        {check("loop", "Loop")}
        <label for="embed-start">Start at (seconds)</label>
        <input
          id="embed-start"
          type="number"
          min={0}
          step={1}
          value={options.start}
          onInput={(e) => {
            setCopied(false);
            setOptions({ ...options, start: (e.target as HTMLInputElement).value });
          }}
        />
      </fieldset>
      <label for="embed">Embed snippet (fills the width of its container, 16:9)</label>
      <textarea id="embed" readOnly rows={4} value={embed} />
      <button
        type="button"
        onClick={async () => {
          await navigator.clipboard?.writeText(embed);
          setCopied(true);
        }}
      >
        {copied ? "Copied" : "Copy snippet"}
      </button>
    </section>
  );
}

type Jobs = NonNullable<ResultOf<typeof VideoJobsQuery>["video"]>["jobs"]["edges"];
type Costs = NonNullable<ResultOf<typeof VideoCostQuery>["video"]>;
type JobCost = Costs["jobs"]["edges"][number]["node"]["cost"] | null;

const usd = new Intl.NumberFormat("en", { style: "currency", currency: "USD", maximumSignificantDigits: 2 });
const money = (value: number | null | undefined) => (value == null ? "–" : usd.format(value));

/** Variants, jobs and their runs (command, stderr tail, exit code): needs the jobs:admin scope. */
function Operators({ video, onRetry }: { video: Video; onRetry: (variantId: string) => Promise<unknown> }) {
  const [jobs, setJobs] = useState<Jobs | null>(null);
  const [chunks, setChunks] = useState<{ total: number; done: number } | null>(null);
  // A split transcode's chunk jobs, by the transcode job's id.
  const [chunkJobs, setChunkJobs] = useState<ReadonlyMap<string, JobNode[]>>(new Map());
  const [error, setError] = useState<string | null>(null);
  // Costs need jobs:admin: a key or viewer without it gets FORBIDDEN, and simply sees no costs.
  const [costs, setCosts] = useState<Costs | null>(null);
  const [costError, setCostError] = useState<string | null>(null);
  const loadJobs = () =>
    request(VideoJobsQuery, { id: video.id })
      .then(async (data) => {
        const edges = data.video?.jobs.edges ?? [];
        const split = data.video?.transcodeChunks ?? null;
        // Only a split video's transcodes have chunk jobs.
        const transcodes = split ? edges.filter(({ node }) => node.kind === "TRANSCODE") : [];
        const lists = await Promise.all(
          transcodes.map(async ({ node }) => {
            const answer = await request(ChunkJobsQuery, { id: node.id });
            return [node.id, answer.job?.chunks ?? []] as const;
          }),
        );
        setJobs(edges);
        setChunks(split);
        setChunkJobs(new Map(lists));
      })
      .catch((err: Error) => setError(err.message));
  const load = () =>
    Promise.all([
      loadJobs(),
      request(VideoCostQuery, { id: video.id })
        .then((data) => setCosts(data.video))
        .catch((err: Error) => {
          setCosts(null);
          setCostError(err instanceof ApiError && err.code === "FORBIDDEN" ? null : err.message);
        }),
    ]);
  const jobCost = (id: string): JobCost =>
    costs?.jobs.edges.flatMap(({ node }) => [node, ...node.chunks]).find((job) => job.id === id)?.cost ?? null;
  // Reload when the video's status changes (a job started, finished or was retried).
  useEffect(() => {
    void load();
  }, [video.id, video.status, video.variants.map((v) => v.status).join()]);
  // A job's own state changes without a video event (a run fails, the job is retried or fails for
  // good after its video did): while one is queued or running, read the jobs again.
  const active =
    jobs?.some(({ node }) =>
      [node, ...(chunkJobs.get(node.id) ?? [])].some((job) => job.status === "QUEUED" || job.status === "RUNNING"),
    ) ?? false;
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => void loadJobs(), 3000);
    return () => clearInterval(timer);
  }, [video.id, active]);

  return (
    <section aria-labelledby="operators-title" class="operators">
      <h2 id="operators-title">Details</h2>
      <Table>
        <caption>Variants</caption>
        <thead>
          <tr>
            <th scope="col">Rung</th>
            <th scope="col">Size</th>
            <th scope="col">Bit rate</th>
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {video.variants.map((v) => (
            <tr key={v.id}>
              <td>{v.name}</td>
              <td>{v.width ? `${v.width}×${v.height}` : v.kind.toLowerCase()}</td>
              <td>{formatVariantBitRate(v)}</td>
              <td>{statusLabel(v.status)}</td>
              <td>{formatPercent(v.progress)}</td>
              <td>
                {v.status === "FAILED" && (
                  <button type="button" onClick={() => onRetry(v.id)}>
                    Retry {v.name}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </Table>
      <h3>Jobs</h3>
      {costs?.cost && (
        <p data-testid="video-cost">
          Cost (an estimate at the configured prices, not a bill): estimated {money(costs.cost.estimatedUsd)} · actual{" "}
          {money(costs.cost.jobCount > 0 && costs.cost.cpuSeconds > 0 ? costs.cost.actualUsd : null)}
          {costs.cost.cpuSeconds > 0 && (
            <span class="muted">
              {" "}
              ({costs.cost.cpuSeconds.toFixed(1)} CPU s, {costs.cost.wallSeconds.toFixed(1)} s)
            </span>
          )}
        </p>
      )}
      {costError && <p class="muted">Costs: {costError}</p>}
      {error && <p class="muted">{error}</p>}
      {jobs?.map(({ node: job }) => (
        <JobDetails key={job.id} job={job} cost={jobCost(job.id)} onChanged={load} onError={setError}>
          {(chunkJobs.get(job.id)?.length ?? 0) > 0 && (
            <section class="job-chunks" aria-label="Chunks">
              <h4>
                Chunks
                {chunks && ` · ${chunks.done} of ${chunks.total} done (the first is this job's own run)`}
              </h4>
              {chunkJobs.get(job.id)?.map((chunk) => (
                <JobDetails key={chunk.id} job={chunk} cost={jobCost(chunk.id)} onChanged={load} onError={setError} />
              ))}
            </section>
          )}
        </JobDetails>
      ))}
    </section>
  );
}

type JobNode = Jobs[number]["node"];

/** One job: its summary line, its error, a cancel button while it is queued or running, and its runs. */
function JobDetails({
  job,
  cost,
  onChanged,
  onError,
  children,
}: {
  job: JobNode;
  cost: JobCost;
  onChanged: () => Promise<unknown>;
  onError: (message: string | null) => void;
  children?: ComponentChildren;
}) {
  return (
    <details class="job">
      <summary>
        {job.kind.toLowerCase()}
        {job.chunk
          ? ` ${job.chunk.index} (${formatDuration(job.chunk.fromSeconds)}–${formatDuration(job.chunk.toSeconds)})`
          : ""}{" "}
        · {statusLabel(job.status)} · attempt {job.attempt}/{job.maxAttempts} · {formatPercent(job.progress)}
        {job.dispatchedTo ? ` · ${job.dispatchedTo}` : ""}
        <JobCostLabel cost={cost} />
      </summary>
      {job.error && <p class="error">{job.error}</p>}
      {(job.status === "QUEUED" || job.status === "RUNNING") && (
        <button
          type="button"
          onClick={async () => {
            const answer = await request(CancelJobMutation, { id: job.id }).catch((err: Error) => ({
              cancelJob: { __typename: "Error", message: err.message },
            }));
            if ("message" in answer.cancelJob) onError(answer.cancelJob.message ?? null);
            void onChanged();
          }}
        >
          Cancel job
        </button>
      )}
      <ol>
        {job.runs.map((run) => (
          <li key={run.id}>
            <p>
              Attempt {run.attempt} on {run.workerId}: {statusLabel(run.status)}
              {run.exitCode != null && ` · exit code ${run.exitCode}`} · {formatDate(run.startedAt)}
            </p>
            {run.error && <p class="error">{run.error}</p>}
            {run.command && (
              <>
                <h4>Command</h4>
                <pre>{run.command}</pre>
              </>
            )}
            {run.stderrTail && (
              <>
                <h4>stderr (tail)</h4>
                <pre>{run.stderrTail}</pre>
              </>
            )}
          </li>
        ))}
      </ol>
      {children}
    </details>
  );
}

/** A job's estimated and actual cost, in its summary line. */
function JobCostLabel({ cost }: { cost: JobCost }) {
  if (!cost || (cost.estimatedUsd == null && cost.actualUsd == null)) return null;
  const basis = cost.estimateBasis === "UPLOAD_SIZE" ? " (rough: from the upload's size)" : "";
  return (
    <span class="muted" data-testid="job-cost">
      {" "}
      · estimated {money(cost.estimatedUsd)}
      {basis} · actual {money(cost.actualUsd)}
      {cost.cpuSeconds != null && ` (${cost.cpuSeconds.toFixed(1)} CPU s)`}
    </span>
  );
}
