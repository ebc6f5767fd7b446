import { setTimeout as sleep } from "node:timers/promises";
import { abortError, type MediaError } from "../media/errors.ts";

/**
 * A broadcast's feed whose connection ended without the API ending the broadcast: the API instance
 * holding it died (SIGKILL, a crash), or cut its reader off. ffmpeg takes either for the end of its
 * input; the run asks the feed what became of it instead of ending the broadcast.
 */
export class FeedBroke extends Error {
  constructor() {
    super("the broadcast's feed broke and did not come back within the stream's reconnect window");
  }
}

/** What became of a broadcast's feed, as the API answers HEAD on it (src/live/feed-endpoint.ts `feedStatus`). */
type FeedStatus = "goes on" | "ended" | "not held";

/** A HEAD on the feed that does not answer within this is a feed not held (its instance is down or starting). */
const STATUS_TIMEOUT_MS = 2000;
/** Between questions while the feed is not held. */
const ASK_AGAIN_MS = 1000;
/**
 * Beyond the stream's reconnect window: the time a publisher back at its last moment takes to be
 * adopted by an instance (its key checked, the broadcast's hold taken, the feed opened).
 */
const ADOPTION_MARGIN_MS = 5000;

/**
 * Asks the feed's address what became of it: 200 it goes on (the instance there holds it), 410 it
 * ended, anything else (404, refused, no answer) not held there now.
 */
export async function feedStatus(feedUrl: string, signal: AbortSignal): Promise<FeedStatus> {
  try {
    const res = await fetch(feedUrl, {
      method: "HEAD",
      signal: AbortSignal.any([signal, AbortSignal.timeout(STATUS_TIMEOUT_MS)]),
    });
    if (res.status === 200) return "goes on";
    if (res.status === 410) return "ended";
    return "not held";
  } catch {
    if (signal.aborted) throw abortError(signal);
    return "not held";
  }
}

/**
 * What a run does after its encode's input ended without the broadcast's end (`FeedBroke`) or its
 * ffmpeg failed (`MediaError`): "encode again" when the feed is there again (the instance restarted
 * in its place, or another, adopted the broadcast when its publisher came back), "restart" when
 * ffmpeg itself failed and the feed goes on or has ended (an ended feed is kept with what the
 * encode had not published, src/live/ended-feeds.ts: the next encode publishes that tail, as a run
 * taking the broadcast over does; docs/live.md "When the encode's process dies"), "end" when the
 * feed ended under an encode that did not fail, or did not come back within the stream's reconnect
 * window (the broadcast then ends with what was published). While the feed
 * is not held, the run waits and asks again every second, holding the broadcast as a full disk
 * does; an API instance that adopts it with another address stops this run (its job is queued
 * again for a run that reads there).
 */
export async function afterFeedEnded(
  feedUrl: string,
  err: FeedBroke | MediaError,
  reconnectWindowSeconds: number,
  signal: AbortSignal,
): Promise<"encode again" | "restart" | "end"> {
  const first = await feedStatus(feedUrl, signal);
  if (first === "ended") return err instanceof FeedBroke ? "end" : "restart";
  if (first === "goes on") return err instanceof FeedBroke ? "encode again" : "restart";
  const until = Date.now() + reconnectWindowSeconds * 1000 + ADOPTION_MARGIN_MS;
  while (Date.now() < until) {
    await sleep(ASK_AGAIN_MS, undefined, { signal }).catch(() => {
      throw abortError(signal);
    });
    const status = await feedStatus(feedUrl, signal);
    if (status === "goes on") return "encode again";
    if (status === "ended") return "end";
  }
  return "end";
}
