import type Hls from "hls.js";
import type { ErrorData, HlsConfig, Level } from "hls.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { hlsLiveLatency, startViewBeacons, type ViewBeacons } from "./analytics-beacons.ts";
import { ChapterList, type PlayerChapter } from "./chapters.tsx";
import { StoryboardScrubber, type StoryboardProps } from "./storyboard-scrubber.tsx";

/**
 * Memory stays bounded: at most 30 s ahead (60 s when the network is fast) and 30 s behind the
 * playhead are kept in the Media Source buffers; hls.js evicts the rest.
 */
const HLS_CONFIG = {
  maxBufferLength: 30,
  maxMaxBufferLength: 60,
  maxBufferSize: 60 * 1000 * 1000,
  backBufferLength: 30,
  // Never fetch a rung larger than the player shows.
  capLevelToPlayerSize: true,
  startLevel: -1,
  // A live broadcast (a playlist without an end): play two segments behind its newest, and catch
  // up at up to 1.5× when further behind (a slow start, a stall), so a viewer stays a few seconds
  // from the publisher rather than wherever they joined. No effect on a video that has ended.
  liveSyncDurationCount: 2,
  maxLiveSyncPlaybackRate: 1.5,
};

/** The audio rung's own media playlist, offered as "audio only" when known. */
const AUDIO_ONLY = -2;

/**
 * EME with the browser's own ClearKey: the licence is asked of the key's URI (the API's
 * `/media/videos/{id}/keys/clearkey?token=…`); hls.js wants a licence URL configured as well.
 */
function clearKeyConfig(source: string): Partial<HlsConfig> {
  return {
    emeEnabled: true,
    drmSystems: { "org.w3.clearkey": { licenseUrl: new URL("/media/", new URL(source, location.href)).href } },
    licenseXhrSetup: (xhr, _url, context) => xhr.open("POST", context.decryptdata.uri, true),
  };
}

/** A level's name in the quality menu: its height, or "audio" for an audio-only source's rungs. */
const levelName = (level: Pick<Level, "height">): string => (level.height ? `${level.height}p` : "audio");

export interface PlayerProps {
  /** The master playlist (with its token for a SIGNED video). */
  src: string;
  poster?: string | null;
  /** The audio rung's media playlist, for an "audio only" choice. */
  audioPlaylist?: string | null;
  title: string;
  /** Start playing at once (browsers allow it only muted, unless the viewer has interacted). */
  autoplay?: boolean;
  muted?: boolean;
  loop?: boolean;
  /** Where playback starts, in seconds. */
  startTime?: number;
  /** Set to the `<video>` element while the player is shown, for a page that reads its current time. */
  element?: { current: HTMLVideoElement | null };
  /** The video's storyboard: a scrub bar under the picture shows its tiles. */
  storyboard?: StoryboardProps | null;
  /**
   * The video's chapters: marked on the scrub bar, listed under the picture (each seeks to its
   * start), and its WebVTT file (`url`) given to the browser as a chapters track.
   */
  chapters?: { url: string | null; list: readonly PlayerChapter[] } | null;
  /**
   * Asks the page for a fresh `src` when the server refuses the playback session (401 or 403) after
   * `src` had played: a SIGNED video's session ends (PLAYBACK_SESSION_SECONDS) while a viewer still
   * watches, a long broadcast above all. Playback goes on from where it was with the URL it returns
   * (in place of `src` until `src` changes); a URL refused before it played is an error, as without
   * this.
   */
  renewSource?: () => Promise<string | null>;
  /**
   * The video is CENC-protected: hls.js plays it through EME's ClearKey, asking for the licence at
   * the URI of its playlists' `EXT-X-KEY` (which carries the playback token).
   */
  clearKey?: boolean;
}

/** hls.js with a quality menu (automatic switching by default), or the browser's own HLS (Safari). */
export function Player(props: PlayerProps) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const hlsRef = useRef<Hls | null>(null);
  const [levels, setLevels] = useState<Level[]>([]);
  const [choice, setChoice] = useState(-1);
  const choiceRef = useRef(-1);
  const [playing, setPlaying] = useState<number | null>(null);
  // The master's AUDIO renditions as hls.js lists them (the video's own audio and any alternate tracks).
  const [audioTracks, setAudioTracks] = useState<{ name: string; lang?: string }[]>([]);
  const [audioTrack, setAudioTrack] = useState(-1);
  const [error, setError] = useState<string | null>(null);
  // The master's URL with a session the page renewed, while `src` is the one it was renewed for.
  const [renewed, setRenewed] = useState<{ from: string; url: string } | null>(null);
  const master = renewed?.from === props.src ? renewed.url : props.src;
  const source = choice === AUDIO_ONLY && props.audioPlaylist ? props.audioPlaylist : master;

  useEffect(() => {
    const element = props.element;
    if (!element) return;
    element.current = videoRef.current;
    return () => {
      element.current = null;
    };
  }, [props.element]);

  useEffect(() => {
    const video = videoRef.current!;
    setError(null);
    let hls: Hls | null = null;
    let beacons: ViewBeacons | null = null;
    let stopped = false;
    // hls.js is most of the console's code: it loads with the first player.
    void import("hls.js").then(({ default: Hls }) => {
      if (stopped) return;
      if (!Hls.isSupported()) {
        if (video.canPlayType("application/vnd.apple.mpegurl")) {
          video.src = props.startTime ? `${source}#t=${props.startTime}` : source;
          beacons = startViewBeacons(video, source);
        } else setError("This browser cannot play HLS.");
        return;
      }
      const at = video.currentTime;
      // A source loaded again (a renewed URL, audio only and back) goes on playing if it was.
      const wasPlaying = at > 0 && !video.paused;
      let played = false;
      hls = new Hls({
        ...HLS_CONFIG,
        ...(props.clearKey ? clearKeyConfig(source) : {}),
        startPosition: at > 0 ? -1 : (props.startTime ?? -1),
      });
      const player = hls;
      hlsRef.current = player;
      player.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
        setLevels(source === master ? data.levels : []);
        if (choiceRef.current >= 0) player.currentLevel = choiceRef.current;
        if (at > 0) video.currentTime = at;
        if (wasPlaying) video.play().catch(() => {});
      });
      player.on(Hls.Events.FRAG_BUFFERED, () => {
        played = true;
      });
      player.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => setPlaying(data.level));
      player.on(Hls.Events.AUDIO_TRACKS_UPDATED, (_event, data) => {
        setAudioTracks(data.audioTracks.map((track) => ({ name: track.name, lang: track.lang })));
        setAudioTrack(player.audioTrack);
      });
      player.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_event, data) => setAudioTrack(data.id));
      let renewing = false;
      player.on(Hls.Events.ERROR, (_event, data: ErrorData) => {
        const status = data.response?.code;
        const refusedSession = status === 401 || status === 403;
        if (refusedSession && played && props.renewSource) {
          // The session ended while playing (hls.js would retry the refused requests for half a
          // minute first): a fresh URL from the page, loaded where playback was.
          if (renewing) return;
          renewing = true;
          const refused = "This video's playback session ended, and a new one could not be opened.";
          const from = props.src;
          // The same URL again would be refused again: it opens no new session.
          props.renewSource().then(
            (url) => (url && url !== source ? setRenewed({ from, url }) : setError(refused)),
            () => setError(refused),
          );
          return;
        }
        if (!data.fatal) return;
        if (refusedSession) setError("This video cannot be played without a valid playback token.");
        else if (status === 404) setError("This video is not available (not public, not playable yet, or deleted).");
        else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) player.recoverMediaError();
        else setError(`Playback failed: ${data.details}`);
      });
      beacons = startViewBeacons(video, source, {
        errors: (report) => {
          const onError = (_event: unknown, data: ErrorData) => report(data.fatal, data.details);
          player.on(Hls.Events.ERROR, onError);
          return () => player.off(Hls.Events.ERROR, onError);
        },
        liveLatencySeconds: () => hlsLiveLatency(player),
      });
      player.loadSource(source);
      player.attachMedia(video);
    });
    return () => {
      stopped = true;
      beacons?.stop();
      hls?.destroy();
      hlsRef.current = null;
    };
  }, [source]);

  const choose = (value: number) => {
    const hls = hlsRef.current;
    const wasAudioOnly = choice === AUDIO_ONLY;
    setChoice(value);
    choiceRef.current = value;
    // Switching back from audio only reloads the master; levels are applied once it is parsed.
    if (value === AUDIO_ONLY || wasAudioOnly || !hls) return;
    hls.currentLevel = value;
  };

  const playingLevel = playing != null ? levels[playing] : undefined;
  return (
    <div class="player">
      <video
        ref={videoRef}
        controls
        playsInline
        autoplay={props.autoplay}
        muted={props.muted}
        loop={props.loop}
        poster={props.poster ?? undefined}
        aria-label={`Video player: ${props.title}`}
        data-testid="player"
      >
        {props.chapters?.url && <track kind="chapters" src={props.chapters.url} default />}
      </video>
      {props.storyboard && (
        <StoryboardScrubber video={videoRef} storyboard={props.storyboard} chapters={props.chapters?.list ?? []} />
      )}
      {props.chapters && props.chapters.list.length > 0 && (
        <ChapterList video={videoRef} chapters={props.chapters.list} />
      )}
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <div class="player-controls">
        <label>
          Quality{" "}
          <select value={choice} onChange={(e) => choose(Number((e.target as HTMLSelectElement).value))}>
            <option value={-1}>Auto{choice === -1 && playingLevel ? ` (${levelName(playingLevel)})` : ""}</option>
            {levels.map((level, index) => (
              <option key={level.url[0]} value={index}>
                {levelName(level)} · {Math.round(level.bitrate / 1000)} kb/s
              </option>
            ))}
            {props.audioPlaylist && <option value={AUDIO_ONLY}>Audio only</option>}
          </select>
        </label>
        {audioTracks.length > 1 && (
          <label>
            Audio{" "}
            <select
              value={audioTrack}
              onChange={(e) => {
                if (hlsRef.current) hlsRef.current.audioTrack = Number((e.target as HTMLSelectElement).value);
              }}
            >
              {audioTracks.map((track, index) => (
                // The API names the video's own audio "default" in its master.
                <option key={`${index}-${track.name}`} value={index}>
                  {track.name === "default" ? "Original" : track.name}
                  {track.lang ? ` (${track.lang})` : ""}
                </option>
              ))}
            </select>
          </label>
        )}
        <span data-testid="playing-level">
          {choice === AUDIO_ONLY ? "audio only" : playingLevel ? `playing ${levelName(playingLevel)}` : ""}
        </span>
      </div>
    </div>
  );
}
