import { log } from "../log.ts";
import { sayGoingOn } from "./broadcast-reconnects.ts";
import { setStatus } from "./broadcast-status.ts";
import { type LiveContext, liveJobOf } from "./live-context.ts";

/**
 * A stream on air (CONNECTED, LIVE) whose broadcast no API instance holds any more (its holder was
 * killed, crashed, or handed it on in a deploy) has no publisher: nobody is left to say so, so every
 * instance looks now and then and says it (DISCONNECTED, with its webhook) once the broadcast has
 * been seen unheld for HOLDERLESS_FOR_MS. The publisher's reconnect, to any instance, continues it
 * (broadcast-adoption.ts); an instance whose own session to Postgres was down meanwhile, and took its
 * hold again, says its publisher is still there (`reclaimStatus`). docs/live.md, "A crash of the API
 * holding a broadcast".
 */

/** How often each API instance looks for broadcasts on air that no instance holds. */
const LOOK_EVERY_MS = 2000;
/**
 * How long a broadcast is seen unheld, on consecutive looks, before its stream says it is
 * disconnected: beyond a holder taking its hold (a start, an adoption: the hold comes first) and
 * most of a holder's own session to Postgres coming back.
 */
const HOLDERLESS_FOR_MS = 5000;

export const HOLDER_GONE =
  "the API instance holding the broadcast stopped; its publisher's reconnect, to any instance, continues it";

/** Starts looking (`stop` ends it): a look never overlaps the one before. */
export function watchHolders(ctx: LiveContext): { stop(): void } {
  /** Broadcasts seen unheld, by video: since when (ms). */
  const unheldSince = new Map<string, number>();
  let looking = false;
  const timer = setInterval(() => {
    if (looking) return;
    looking = true;
    lookForHolderless(ctx, unheldSince)
      .catch((err) => log.warn("live: broadcasts with no holder could not be looked for", { err: String(err) }))
      .finally(() => {
        looking = false;
      });
  }, LOOK_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

async function lookForHolderless(ctx: LiveContext, unheldSince: Map<string, number>): Promise<void> {
  const onAir = await ctx.db.liveStream.findMany({
    where: { status: { in: ["CONNECTED", "LIVE"] }, activeVideoId: { not: null } },
    select: { id: true, activeVideoId: true, lastError: true },
  });
  const elsewhere = onAir.filter(
    ({ activeVideoId: v }) => !ctx.feeds.has(v!) && !ctx.endedHere.has(v!) && !ctx.handingOn.has(v!),
  );
  const unheld = elsewhere.length > 0 ? await ctx.holds.unheld(elsewhere.map((s) => s.activeVideoId!)) : new Set();
  const now = Date.now();
  for (const videoId of unheldSince.keys()) if (!unheld.has(videoId)) unheldSince.delete(videoId);
  for (const stream of elsewhere) {
    const videoId = stream.activeVideoId!;
    if (!unheld.has(videoId)) continue;
    const since = unheldSince.get(videoId) ?? now;
    unheldSince.set(videoId, since);
    if (now - since < HOLDERLESS_FOR_MS) continue;
    unheldSince.delete(videoId);
    // Its encode is over: its end says ENDED (or the next publisher's key check applies it).
    if (!(await liveJobOf(ctx, videoId))) continue;
    log.warn("live: a broadcast on air has no API instance holding it; its stream says it is disconnected", {
      streamId: stream.id,
      videoId,
    });
    // What its recording lacks, if said, stays said.
    await setStatus(ctx, stream.id, "DISCONNECTED", {
      from: ["CONNECTED", "LIVE"],
      ...(stream.lastError ? {} : { lastError: HOLDER_GONE }),
    });
  }
}

/**
 * This instance took `videoId`'s hold again after its session to Postgres was down: where its
 * publisher is still here, its stream says so again (another instance may have said it
 * disconnected meanwhile), as a publisher's reconnect does.
 */
export async function reclaimStatus(ctx: LiveContext, videoId: string): Promise<void> {
  const entry = ctx.feeds.get(videoId);
  if (!entry || entry.feed.ended || ctx.graces.has(entry.streamId)) return;
  await sayGoingOn(ctx, entry.streamId, videoId, ["DISCONNECTED"]);
}
