// What the fan-out benchmark's two servers share: the document the front end subscribes with, how
// a progress event carries its send time, and the publishing schedule.

/** The front end's subscription (docs/api-guide.md), sent by every benchmark client. */
export const FRONT_END_VIDEO_EVENTS = /* GraphQL */ `
subscription VideoEvents($id: ID!) {
  videoEvents(videoId: $id) {
    __typename
    video { id status playable }
    ... on VariantProgressEvent { variant { name height status progress } fps speed etaSeconds }
  } }`;

/**
 * The publisher's clock, in epoch milliseconds, rides in `etaSeconds` (a Float the front end asks
 * for), so each client measures latency as its receive time minus this.
 */
export const SENT_AT_FIELD = "etaSeconds";

/** Epoch milliseconds with sub-millisecond resolution; comparable across processes of one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

const TICK_MS = 2;

/**
 * How progress is published: `bursty` sends every video's event at the same instant once a second
 * (encodes that report on one clock, and what real workers' batched progress looks like to the
 * API); `even` spreads them over each second (video i at i/n of it).
 */
export const PUBLISH_MODES = ["bursty", "even"] as const;
export type PublishMode = (typeof PUBLISH_MODES)[number];

/**
 * Calls `publishOne(videoId, sentAt)` once a second for each video for `seconds`, on the schedule
 * `mode` names. A burst's events all carry the burst's start as `sentAt`: a subscriber's latency is
 * counted from the moment its event existed. Resolves with how many events were published per video.
 */
export function publish(
  mode: PublishMode,
  videoIds: readonly string[],
  seconds: number,
  publishOne: (videoId: string, sentAt: number) => void,
): Promise<number> {
  const total = videoIds.length * seconds;
  const spacingMs = mode === "even" ? 1000 / videoIds.length : 0;
  const start = epochMs();
  let next = 0;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = epochMs() - start;
      while (next < total && next * spacingMs <= elapsed) {
        if (mode === "bursty") {
          // Second k's burst is due at k * 1000 ms.
          if (Math.floor(next / videoIds.length) * 1000 > elapsed) break;
          const sentAt = epochMs();
          for (const videoId of videoIds) publishOne(videoId, sentAt);
          next += videoIds.length;
          continue;
        }
        publishOne(videoIds[next % videoIds.length]!, epochMs());
        next++;
      }
      if (next === total) {
        clearInterval(timer);
        resolve(seconds);
      }
    }, TICK_MS);
  });
}
