import { Repeater } from "graphql-yoga";

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

    /**
     * The live count of `videoId`: now, then each time it changes, until `return()`. Events that
     * arrive while a count runs, or while the subscriber has not taken the last value, make one
     * more count, not one each.
     */
    follow(videoId: string): AsyncIterableIterator<number> {
      return new Repeater<number>(async (push, stop) => {
        let last: number | null = null;
        let dirty = true;
        let counting = false;
        const recount = async () => {
          if (counting) return;
          counting = true;
          try {
            while (dirty) {
              dirty = false;
              const n = await options.count(videoId);
              if (n === last) continue;
              last = n;
              await push(n);
            }
          } catch (err) {
            stop(err);
          } finally {
            counting = false;
          }
        };
        const onEvent = () => {
          dirty = true;
          void recount();
        };
        target.addEventListener(topic(videoId), onEvent);
        const timer = setInterval(onEvent, options.recountEveryMs);
        timer.unref();
        void recount();
        await stop;
        clearInterval(timer);
        target.removeEventListener(topic(videoId), onEvent);
      });
    },
  };
}
