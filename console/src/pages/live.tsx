import { useEffect, useState } from "preact/hooks";
import { formatDate, statusLabel } from "../format.ts";
import { type ResultOf, request, runAndReload, subscribe, type VariablesOf, useLatestReload } from "../graphql.ts";
import {
  CreateLiveStreamMutation,
  LiveStreamEventsSubscription,
  LiveStreamsQuery,
  RotateLiveStreamKeyMutation,
  SetLiveStreamEnabledMutation,
} from "../live-operations.ts";
import { freshPlaybackUrl, usePlaybackUrl } from "../live-video.ts";
import { Player } from "../player.tsx";
import { Link, useTitle } from "../router.tsx";
import { SimulcastTargets } from "./live/simulcast-targets.tsx";

type Stream = ResultOf<typeof LiveStreamsQuery>["liveStreams"][number];
type Usage = ResultOf<typeof LiveStreamsQuery>["liveUsage"];
type Health = NonNullable<ResultOf<typeof LiveStreamEventsSubscription>["liveStreamEvents"]["health"]>;
type CreateInput = NonNullable<VariablesOf<typeof CreateLiveStreamMutation>["input"]>;
type LatencyMode = NonNullable<CreateInput["latencyMode"]>;
type PlaybackPolicy = NonNullable<CreateInput["playbackPolicy"]>;

/** A key just made or rotated: shown once, with the settings to paste into OBS. */
/** A stream's key and whole SRT address (null without SRT ingest), shown once after creating or rotating it. */
interface ShownKey {
  streamId: string;
  key: string;
  srtUrl: string | null;
}

/** Live streams: make one, get its key and OBS settings, watch its broadcast with its state and health. */
export function LivePage() {
  useTitle("Live");
  const [streams, setStreams] = useState<Stream[] | null>(null);
  const [usage, setUsage] = useState<Usage | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [shown, setShown] = useState<ShownKey | null>(null);
  const [title, setTitle] = useState("");
  const [latencyMode, setLatencyMode] = useState<LatencyMode>("STANDARD");
  const [playbackPolicy, setPlaybackPolicy] = useState<PlaybackPolicy>("PUBLIC");
  const [recording, setRecording] = useState(true);
  const load = useLatestReload(
    () => request(LiveStreamsQuery, {}),
    (data) => {
      setStreams(data.liveStreams);
      setUsage(data.liveUsage);
    },
    (err) => setMessage(err.message),
  );
  useEffect(() => {
    void load();
  }, []);
  const run = (work: () => Promise<{ __typename: string; message?: string }>) => runAndReload(work, setMessage, load);

  return (
    <section aria-labelledby="live-title">
      <h1 id="live-title">Live</h1>
      {usage && (
        <p class="muted" data-testid="live-usage">
          This month: {(usage.secondsUsed / 60).toFixed(1)} live minutes
          {usage.minutesLimit === null ? " (no monthly quota)" : ` of ${usage.minutesLimit}`}
        </p>
      )}
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          void run(async () => {
            const input = { title: title || null, latencyMode, playbackPolicy, recording };
            const created = (await request(CreateLiveStreamMutation, { input })).createLiveStream;
            if (created.__typename !== "LiveStreamWithKey") return created;
            setShown({ streamId: created.liveStream.id, key: created.streamKey, srtUrl: created.srtUrl });
            return created;
          });
        }}
      >
        <h2>Go live</h2>
        <label for="live-stream-title">Title</label>
        <input id="live-stream-title" value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        <label for="live-stream-latency">Latency</label>
        <select
          id="live-stream-latency"
          value={latencyMode}
          onChange={(e) => setLatencyMode((e.target as HTMLSelectElement).value as LatencyMode)}
        >
          <option value="STANDARD">Standard (2 s segments)</option>
          <option value="LOW">Low (1 s segments)</option>
        </select>
        <label for="live-stream-policy">Playback</label>
        <select
          id="live-stream-policy"
          value={playbackPolicy}
          onChange={(e) => setPlaybackPolicy((e.target as HTMLSelectElement).value as PlaybackPolicy)}
        >
          <option value="PUBLIC">Public</option>
          <option value="SIGNED">Signed (tokens)</option>
        </select>
        <label class="check">
          <input
            type="checkbox"
            checked={recording}
            onChange={(e) => setRecording((e.target as HTMLInputElement).checked)}
          />
          Keep each broadcast's recording (a video when it ends)
        </label>
        <button type="submit">Create live stream</button>
      </form>
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
      {streams?.length === 0 && <p>No live streams yet.</p>}
      {streams?.map((stream) => (
        <LiveStreamCard
          key={stream.id}
          initial={stream}
          shown={shown?.streamId === stream.id ? shown : null}
          onRotate={() =>
            run(async () => {
              const result = (await request(RotateLiveStreamKeyMutation, { id: stream.id })).rotateLiveStreamKey;
              if (result.__typename === "LiveStreamWithKey" && "streamKey" in result)
                setShown({ streamId: stream.id, key: result.streamKey, srtUrl: result.srtUrl });
              return result;
            })
          }
          onEnable={(enabled) =>
            run(
              async () =>
                (await request(SetLiveStreamEnabledMutation, { id: stream.id, enabled })).setLiveStreamEnabled,
            )
          }
          run={run}
        />
      ))}
    </section>
  );
}

/** One stream, followed over `liveStreamEvents`: its state, its encode's health, its broadcast's player. */
function LiveStreamCard(props: {
  initial: Stream;
  shown: ShownKey | null;
  onRotate: () => void;
  onEnable: (enabled: boolean) => void;
  run: (work: () => Promise<{ __typename: string; message?: string }>) => Promise<void>;
}) {
  const [stream, setStream] = useState<Stream>(props.initial);
  const [health, setHealth] = useState<Health | null>(null);
  useEffect(() => setStream(props.initial), [props.initial]);
  useEffect(
    () =>
      subscribe(
        LiveStreamEventsSubscription,
        { id: props.initial.id },
        {
          next: (data) => {
            setStream(data.liveStreamEvents.liveStream);
            setHealth(data.liveStreamEvents.health ?? null);
          },
        },
      ),
    [props.initial.id],
  );
  const video = stream.activeVideo;
  const playback = usePlaybackUrl(video);
  const onAir = stream.status === "CONNECTED" || stream.status === "LIVE";
  return (
    <article class="card" aria-label={`Live stream ${stream.title}`}>
      <h2>{stream.title}</h2>
      <p>
        <span aria-live="polite">
          Status: <strong>{stream.status}</strong>
        </span>{" "}
        · {stream.latencyMode === "LOW" ? "low latency" : "standard latency"} · {stream.playbackPolicy.toLowerCase()} ·{" "}
        {stream.recording ? "recorded" : "not recorded"} · key …{stream.streamKeyHint} {stream.disabled && "· disabled"}{" "}
        · since {formatDate(stream.createdAt)}
      </p>
      {stream.lastError && <p class="warning">Last error: {stream.lastError}</p>}
      {props.shown && (
        <ObsSettings ingestUrl={stream.ingestUrl} streamKey={props.shown.key} srtUrl={props.shown.srtUrl} />
      )}
      {onAir && health && (
        <p class="muted">
          Encode: {health.speed === null ? "…" : `${health.speed.toFixed(2)}×`} · {health.fps ?? "…"} fps ·{" "}
          {health.segments} segments · {health.behindSeconds === null ? "…" : `${health.behindSeconds.toFixed(1)} s`}{" "}
          behind · input {health.inputBitrate === null ? "…" : `${Math.round(health.inputBitrate / 1000)} kbit/s`}
        </p>
      )}
      {onAir && health && health.renditions.length > 0 && (
        <p class="muted" data-testid="live-renditions">
          Renditions:{" "}
          {health.renditions
            .map(
              (r) =>
                `${r.name}${r.copied ? " (copied)" : ""} ${r.bitrate === null ? "…" : `${Math.round(r.bitrate / 1000)} kbit/s`}`,
            )
            .join(" · ")}
        </p>
      )}
      {stream.status === "LIVE" && video && playback && (
        <Player
          key={video.id}
          src={playback}
          poster={video.posterUrl}
          title={`${stream.title}, live`}
          autoplay
          muted
          renewSource={() => freshPlaybackUrl(video.id)}
        />
      )}
      {video?.status === "DISCARDED" && !onAir && (
        <p class="muted">The last broadcast was not recorded: its media were deleted when it ended.</p>
      )}
      {video && video.status !== "DISCARDED" && !onAir && (
        <p>
          {stream.status === "ENDED" ? "Recording" : "Broadcast"}:{" "}
          <Link href={`/videos/${video.id}`}>{video.title}</Link> ({statusLabel(video.status)})
        </p>
      )}
      <SimulcastTargets streamId={stream.id} targets={stream.simulcastTargets} run={props.run} />
      <div class="actions">
        <button type="button" onClick={props.onRotate}>
          Rotate key
        </button>
        <button type="button" class={stream.disabled ? "" : "danger"} onClick={() => props.onEnable(stream.disabled)}>
          {stream.disabled ? "Enable" : "Disable"}
        </button>
      </div>
    </article>
  );
}

/** What to paste into OBS (Settings → Stream, and Output), and the same as an ffmpeg command; SRT where offered. */
function ObsSettings(props: { ingestUrl: string; streamKey: string; srtUrl: string | null }) {
  return (
    <section class="warning obs-settings" aria-label="Stream key and OBS settings">
      <p>
        Stream key (and SRT address), shown once: keep them secret (anyone with the key can broadcast on this stream).
      </p>
      <dl>
        <dt>OBS → Settings → Stream → Service</dt>
        <dd>Custom…</dd>
        <dt>Server</dt>
        <dd>
          <code>{props.ingestUrl}</code>
        </dd>
        <dt>Stream Key</dt>
        <dd>
          <code>{props.streamKey}</code>
        </dd>
        <dt>Output</dt>
        <dd>
          Video encoder x264 (or any H.264 encoder), rate control CBR, keyframe interval 2 s; audio AAC. Up to
          3840×2160.
        </dd>
        <dt>From a terminal</dt>
        <dd>
          <code>{`ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -g 60 -c:a aac -f flv "${props.ingestUrl}/${props.streamKey}"`}</code>
        </dd>
        {props.srtUrl && (
          <>
            <dt>Or over SRT, encrypted (OBS: this as the Server, the Stream Key left empty)</dt>
            <dd>
              <code>{props.srtUrl}</code>
            </dd>
          </>
        )}
      </dl>
    </section>
  );
}
