import {
  ANALYTICS_PATHS,
  BEACON_FORMAT_VERSION,
  BEACON_LIMITS,
  type BeaconBatch,
  type BeaconEvent,
  type ViewStarted,
} from "../../src/shared/analytics-beacons.ts";

/**
 * Hands the player's errors (hls.js: `fatal` and `details`) to `report` until the returned function
 * is called.
 */
type PlayerErrors = (report: (fatal: boolean, code: string) => void) => () => void;

/** What the player tells beyond the media element: its errors, and its live latency. */
export interface PlayerHooks {
  errors?: PlayerErrors | null;
  /**
   * While it plays a live broadcast: how far behind the newest segment it knows of the frame it
   * shows is, in seconds (hls.js's `latency`); null otherwise.
   */
  liveLatencySeconds?: (() => number | null) | null;
}

/** What `hlsLiveLatency` reads of an hls.js instance (hls.js 1.6 on). */
export interface HlsLatency {
  latency?: number;
  latestLevelDetails?: { live: boolean } | null;
}

/**
 * An hls.js player's live latency for `liveLatencySeconds`: its `latency` while the level it plays
 * is live, and null before hls.js has measured one (its getter answers 0 until the first
 * `timeupdate` after a live playlist loaded, which a viewer's first batch reported as a latency of
 * none).
 */
export function hlsLiveLatency(hls: HlsLatency): number | null {
  const seconds = hls.latency;
  return hls.latestLevelDetails?.live && seconds !== undefined && seconds > 0 ? seconds : null;
}

export interface ViewBeacons {
  /** Sends what is gathered and stops watching the element. */
  stop(): void;
}

/** Events kept while the endpoint is slow or down; past it the oldest go. */
const MAX_QUEUED_EVENTS = 200;
const DEFAULT_FLUSH_MS = 10_000;
/** A gap between two `timeupdate`s longer than this is a seek or a stall, not watch time. */
const MAX_WATCH_STEP_MS = 2000;
const NONE: ViewBeacons = { stop() {} };

/** The video id and playback token of an API playback URL (`…/media/videos/{id}/hls/master.m3u8?token=…`). */
function playbackOf(masterUrl: string): { origin: string; videoId: string; playbackToken: string | null } | null {
  let url: URL;
  try {
    url = new URL(masterUrl, location.href);
  } catch {
    return null;
  }
  const parts = url.pathname.split("/");
  const at = parts.indexOf("videos");
  const videoId = at >= 0 ? parts[at + 1] : undefined;
  if (videoId?.length !== 36) return null;
  return { origin: url.origin, videoId, playbackToken: url.searchParams.get("token") };
}

/** Whether the browser asks not to be tracked (Do Not Track, Global Privacy Control). */
function doNotTrack(): boolean {
  const nav = navigator as Navigator & { globalPrivacyControl?: boolean; msDoNotTrack?: string };
  return (
    nav.doNotTrack === "1" ||
    nav.globalPrivacyControl === true ||
    (window as { doNotTrack?: string }).doNotTrack === "1"
  );
}

/**
 * Reports what the viewer of `video` experiences (docs/analytics.md): startup time, stalls, time at
 * each height, rendition switches, failures, completion, and a live broadcast's latency once a
 * batch. Never in the way of playback: requests go out with `keepalive` or `sendBeacon`, every
 * failure is swallowed, the queue is bounded, and a refusal (collection off, token expired) ends the
 * reporting quietly. Nothing is sent under Do Not Track.
 */
export function startViewBeacons(video: HTMLVideoElement, masterUrl: string, player: PlayerHooks = {}): ViewBeacons {
  const playback = playbackOf(masterUrl);
  if (!playback || doNotTrack() || typeof fetch !== "function") return NONE;
  const post = (path: string, body: unknown, atExit = false): Promise<Response | null> => {
    const url = `${playback.origin}${path}`;
    const text = JSON.stringify(body);
    // text/plain: a simple request, no CORS preflight.
    if (atExit && navigator.sendBeacon?.(url, new Blob([text], { type: "text/plain" }))) return Promise.resolve(null);
    return fetch(url, { method: "POST", body: text, keepalive: true, headers: { "content-type": "text/plain" } }).catch(
      () => null,
    );
  };

  let view: ViewStarted | null = null;
  let viewStarting = false;
  let ended = false;
  let startedAt: number | null = null;
  let seq = 0;
  const queue: BeaconEvent[] = [];
  const watchByHeight = new Map<number, number>();
  let lastTick: { at: number; time: number } | null = null;
  let stallSince: number | null = null;
  let firstFrame = false;
  let height = 0;
  let timer: ReturnType<typeof setInterval> | null = null;

  const sinceStart = () =>
    Math.min(BEACON_LIMITS.maxAtMs, Math.max(0, Math.round(performance.now() - (startedAt ?? 0))));
  const push = (event: BeaconEvent) => {
    if (ended) return;
    queue.push(event);
    if (queue.length > MAX_QUEUED_EVENTS) queue.splice(0, queue.length - MAX_QUEUED_EVENTS);
  };
  const clampMs = (ms: number) => Math.min(BEACON_LIMITS.maxDurationMs, Math.max(0, Math.round(ms)));

  function takeWatchTime(): void {
    for (const [h, ms] of watchByHeight) {
      if (ms >= 1) push({ type: "watch", at: sinceStart(), height: h, watchedMs: clampMs(ms) });
    }
    watchByHeight.clear();
  }

  /** The live latency now, when a live broadcast is playing. */
  function takeLiveLatency(): void {
    if (video.paused || !player.liveLatencySeconds) return;
    const seconds = player.liveLatencySeconds();
    if (seconds !== null && Number.isFinite(seconds) && seconds >= 0)
      push({ type: "liveLatency", at: sinceStart(), latencyMs: clampMs(seconds * 1000) });
  }

  function flush(atExit = false): void {
    if (!view || ended) return;
    takeWatchTime();
    takeLiveLatency();
    while (queue.length) {
      const events = queue.splice(0, BEACON_LIMITS.eventsPerBatch);
      const batch: BeaconBatch = {
        v: BEACON_FORMAT_VERSION,
        videoId: playback!.videoId,
        viewToken: view.viewToken,
        seq: seq++,
        events,
      };
      void post(ANALYTICS_PATHS.beacons, batch, atExit).then((res) => {
        // Refused for good (collection off, view expired or gone): stop; a 429 or 5xx only loses this batch.
        if (res && (res.status === 403 || res.status === 404)) stopReporting();
      });
    }
  }

  function beginView(): void {
    if (startedAt !== null || ended) return;
    startedAt = performance.now();
    viewStarting = true;
    const start = {
      v: BEACON_FORMAT_VERSION,
      videoId: playback!.videoId,
      ...(playback!.playbackToken ? { playbackToken: playback!.playbackToken } : {}),
    };
    void post(ANALYTICS_PATHS.views, start)
      .then((res) => (res?.status === 201 ? (res.json() as Promise<ViewStarted>) : null))
      .catch(() => null)
      .then((started) => {
        viewStarting = false;
        if (!started) return stopReporting();
        view = started;
        timer = setInterval(() => flush(), started.flushIntervalMs || DEFAULT_FLUSH_MS);
        // What happened while the view was starting (a short video may have ended) goes now, not
        // an interval later.
        if (queue.length > 0) flush();
      });
  }

  const onPlay = () => beginView();
  const onPlaying = () => {
    beginView();
    if (!firstFrame) {
      firstFrame = true;
      push({ type: "startup", at: sinceStart(), startupMs: clampMs(performance.now() - startedAt!) });
    }
    if (stallSince !== null) {
      push({ type: "rebuffer", at: sinceStart(), durationMs: clampMs(performance.now() - stallSince) });
      stallSince = null;
    }
    lastTick = { at: performance.now(), time: video.currentTime };
  };
  const onWaiting = () => {
    // A seek's wait is the viewer's choice, not a stall.
    if (firstFrame && !video.seeking && stallSince === null) stallSince = performance.now();
    lastTick = null;
  };
  const onTimeUpdate = () => {
    const now = performance.now();
    if (lastTick && !video.paused && !video.seeking) {
      const step = (video.currentTime - lastTick.time) * 1000;
      if (step > 0 && step <= MAX_WATCH_STEP_MS && now - lastTick.at <= MAX_WATCH_STEP_MS * 2) {
        watchByHeight.set(height, (watchByHeight.get(height) ?? 0) + step);
      }
    }
    lastTick = { at: now, time: video.currentTime };
  };
  const onResize = () => {
    if (video.videoHeight === height) return;
    // The first height is where playback starts, not a switch.
    const switched = height !== 0;
    height = video.videoHeight;
    if (switched && startedAt !== null) push({ type: "rendition", at: sinceStart(), height });
  };
  const onPauseOrSeek = () => {
    lastTick = null;
  };
  const onEnded = () => {
    push({ type: "completed", at: sinceStart() });
    flush();
  };
  const onError = () => {
    const code = video.error?.code;
    push({ type: "failure", at: sinceStart(), fatal: true, code: `MEDIA_ERR_${code ?? 0}` });
  };
  const onPlayerError = (fatal: boolean, details: string) => {
    const code =
      String(details)
        .replace(/[^\w.-]/g, "")
        .slice(0, BEACON_LIMITS.errorCodeChars) || "unknown";
    push({ type: "failure", at: sinceStart(), fatal, code });
  };
  const onHidden = () => {
    if (document.visibilityState === "hidden") flush(true);
  };
  const onPageHide = () => flush(true);

  const listeners: [string, EventListener][] = [
    ["play", onPlay],
    ["playing", onPlaying],
    ["waiting", onWaiting],
    ["timeupdate", onTimeUpdate],
    ["resize", onResize],
    ["pause", onPauseOrSeek],
    ["seeking", onPauseOrSeek],
    ["ended", onEnded],
    ["error", onError],
  ];
  for (const [name, listener] of listeners) video.addEventListener(name, listener);
  const stopPlayerErrors = player.errors?.(onPlayerError);
  document.addEventListener("visibilitychange", onHidden);
  window.addEventListener("pagehide", onPageHide);
  // Autoplay: the view starts with the source, so startup time counts its loading.
  if (video.autoplay || !video.paused) beginView();

  function stopReporting(): void {
    ended = true;
    queue.length = 0;
    if (timer) clearInterval(timer);
    for (const [name, listener] of listeners) video.removeEventListener(name, listener);
    stopPlayerErrors?.();
    document.removeEventListener("visibilitychange", onHidden);
    window.removeEventListener("pagehide", onPageHide);
  }

  return {
    stop() {
      if (stallSince !== null && !ended) {
        push({ type: "rebuffer", at: sinceStart(), durationMs: clampMs(performance.now() - stallSince) });
        stallSince = null;
      }
      flush(true);
      // A view still being started keeps nothing: its events have no token to go with.
      if (viewStarting) queue.length = 0;
      stopReporting();
    },
  };
}
