import { type HlsLatency, hlsLiveLatency, startViewBeacons, type ViewBeacons } from "./analytics-beacons.ts";

/** What the script needs of an hls.js instance: its event emitter, and its live latency (hls.js 1.6 on). */
interface HlsLike extends HlsLatency {
  on(event: "hlsError", listener: (event: string, data: { fatal: boolean; details: string }) => void): void;
  off(event: "hlsError", listener: (event: string, data: { fatal: boolean; details: string }) => void): void;
}

/**
 * The standalone beacon script (`/analytics/v1/beacons.js`) for any page with its own player:
 * `videographAnalytics.track(videoElement, playbackUrl, hls)` reports that element's playback of the
 * API's playback URL (hls.js's errors and a live broadcast's latency too when `hls` is given) and
 * returns `{ stop() }`. The same module as the console's player, built on its own.
 */
const videographAnalytics = {
  track(video: HTMLVideoElement, playbackUrl: string, hls?: HlsLike | null): ViewBeacons {
    if (!hls) return startViewBeacons(video, playbackUrl);
    return startViewBeacons(video, playbackUrl, {
      errors: (report) => {
        const onError = (_event: string, data: { fatal: boolean; details: string }) => report(data.fatal, data.details);
        hls.on("hlsError", onError);
        return () => hls.off("hlsError", onError);
      },
      liveLatencySeconds: () => hlsLiveLatency(hls),
    });
  },
};

(globalThis as { videographAnalytics?: typeof videographAnalytics }).videographAnalytics = videographAnalytics;
