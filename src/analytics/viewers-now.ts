/**
 * Live viewer counts (`viewersNow`): views of a video with a beacon in the last `windowSeconds`.
 * Activity on any API instance goes through the event fan-out (`target`: Postgres LISTEN/NOTIFY),
 * at most one event per video per `publishEveryMs` per instance; a subscriber recounts on each, and
 * every `recountEveryMs` so that viewers who left drop out. It yields the count when it changes.
 */
export function createViewersNow(options: {
  target: EventTarget;
  count(videoId: string): Promise<number>;
  publishEveryMs: number;
  recountEveryMs: number;
}) {
  const { target } = options;
  const lastPublished = new Map<string, number>();
  const topic = (videoId: string) => `analyticsViewers:${videoId}`;

  return {
    /** Tells every instance's subscribers of `videoId` to recount, unless this instance just did. */
    publishActivity(videoId: string, now = Date.now()): void {
      const last = lastPublished.get(videoId);
      if (last !== undefined && now - last < options.publishEveryMs) return;
      if (lastPublished.size > 100_000) lastPublished.clear();
      lastPublished.set(videoId, now);
      target.dispatchEvent(new CustomEvent(topic(videoId), { detail: { videoId } }));
    },

    /** The live count of `videoId`: now, then each time it changes, until `return()`. */
    follow(videoId: string): AsyncIterableIterator<number> {
      let wake: (() => void) | null = null;
      let dirty = true;
      let stopped = false;
      let last: number | null = null;
      const onEvent = () => {
        dirty = true;
        wake?.();
      };
      target.addEventListener(topic(videoId), onEvent);
      const timer = setInterval(onEvent, options.recountEveryMs);
      timer.unref();
      const stop = () => {
        if (stopped) return;
        stopped = true;
        clearInterval(timer);
        target.removeEventListener(topic(videoId), onEvent);
        wake?.();
      };
      const iterator: AsyncIterableIterator<number> = {
        async next() {
          while (!stopped) {
            if (dirty) {
              dirty = false;
              const n = await options.count(videoId);
              if (n !== last && !stopped) {
                last = n;
                return { value: n, done: false };
              }
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = null;
          }
          return { value: undefined, done: true };
        },
        return() {
          stop();
          return Promise.resolve({ value: undefined, done: true });
        },
        throw(err: unknown) {
          stop();
          return Promise.reject(err);
        },
        [Symbol.asyncIterator]() {
          return iterator;
        },
      };
      return iterator;
    },
  };
}
