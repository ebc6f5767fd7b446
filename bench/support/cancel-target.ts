/** One subscription's sink, as graphql-ws's client takes it. */
export interface SubscriptionSink {
  next(message: unknown): void;
  error(err: unknown): void;
  complete(): void;
}

/** Starts `videoEvents` of the cancel's video with `sink`; returns what stops it. */
export type SubscribeVideoEvents = (sink: SubscriptionSink) => () => void;

/** What following a cancel's video reports. */
export interface CancelTargetHandlers {
  /** Every status the video's events carry (READY, FAILED, CANCELED end its subscription). */
  status(status: string): void;
  /** Once: one of its rungs passed 60 % or is READY (its last segment is encoding): cancel it now. */
  nearCompletion(): void;
  /** Its subscription ended (the video ended), or failed once `keepTrying()` is false, before it was near completion. */
  endedFirst(): void;
}

/** How long after a failed subscription the next one starts. */
const RESUBSCRIBE_MS = 1000;

/**
 * Follows the video a chaos `cancel` targets until it is near completion. A subscription that fails
 * is made again while `keepTrying()`: an API killed and restarting answers the client's
 * re-subscription with an error while its database is down (a `pg-restart` beside an `api-kill`),
 * and that cancel was neither injected nor counted as not injected (the seed 553849684 run's
 * "cancel 1/2"). A video that ended meanwhile starts its new subscription with its end: `endedFirst`.
 */
export function followCancelTarget(
  subscribe: SubscribeVideoEvents,
  handlers: CancelTargetHandlers,
  keepTrying: () => boolean,
  resubscribeMs = RESUBSCRIBE_MS,
): void {
  let fired = false;
  const start = () => {
    subscribe({
      next: (m) => {
        const events = (m as { data?: { videoEvents?: VideoEvent } }).data?.videoEvents;
        if (events?.video?.status) handlers.status(events.video.status);
        const variant = events?.variant;
        if (fired || !variant || !((variant.progress ?? 0) >= 0.6 || variant.status === "READY")) return;
        fired = true;
        handlers.nearCompletion();
      },
      error: () => {
        if (fired) return;
        if (keepTrying()) setTimeout(start, resubscribeMs).unref();
        else handlers.endedFirst();
      },
      complete: () => {
        if (!fired) handlers.endedFirst();
      },
    });
  };
  start();
}

interface VideoEvent {
  video?: { status?: string };
  variant?: { status?: string; progress?: number };
}
