import { parseJobInput, type StoredJobInput } from "../jobs/create-job.ts";
import { log } from "../log.ts";
import { Capability } from "../protocol/worker-messages.ts";
import type { LiveFeed } from "./feed.ts";
import { type LiveContext, liveJobOf } from "./live-context.ts";

/**
 * A broadcast's feed without a reader this long while it goes on has lost its encode (its worker
 * died, or fell too far behind): its job is queued again for another run to take it over. Longer
 * than a run takes between its sample of the feed and its encode's read.
 */
const READERLESS_TAKEOVER_MS = 3000;

/**
 * Watches a broadcast's feed held here for its encode's run going away while the broadcast goes
 * on: after READERLESS_TAKEOVER_MS without a reader or a run's presence, its LIVE job is queued again at once (its
 * runs abandoned, their workers told to stop them), so another run takes it over and goes on with
 * its playlists (render-worker/media/live-continuation.ts) without waiting for the transport to
 * notice the dead run. Not once the feed has run its encode's length (the encode's own cap); the
 * same after the feed's end (kept until its encode ends).
 * `awaitingReader`: the feed has none yet and its run is expected to ask for it (a broadcast
 * adopted here whose run waits for its feed): the same wait starts now.
 */
export function watchReaders(ctx: LiveContext, videoId: string, feed: LiveFeed, awaitingReader = false): void {
  let timer: NodeJS.Timeout | null = null;
  const arm = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const ended = ctx.endedFeeds.get(videoId) === feed;
      if (!ended && (feed.ended || ctx.feeds.get(videoId)?.feed !== feed)) return;
      // A run that lives holds its presence (render-worker/handlers/live-presence.ts): one that stopped
      // reading (its ffmpeg restarting, its end being written on a disk that stayed full) is left to
      // itself; its presence going is its death, which arms this again.
      if (feed.readerCount > 0 || feed.presenceCount > 0) return;
      takeOverEncode(ctx, videoId, feed.receivedSeconds)
        // A run dispatched or started meanwhile is given the same wait to ask for the feed.
        .then((taken) => taken === "too soon" && arm())
        .catch((err) => log.error("live: the broadcast's encode could not be queued again", { videoId, err }));
    }, READERLESS_TAKEOVER_MS);
    timer.unref();
  };
  feed.onReaderGone(arm);
  if (awaitingReader) arm();
}

/**
 * Queues a readerless broadcast's encode again; "too soon" when its job was dispatched, or a run of
 * it started, within READERLESS_TAKEOVER_MS: that run has not had the time to ask for the feed (a
 * takeover then withdrew the message it had just claimed, and the run failed the broadcast).
 */
async function takeOverEncode(
  ctx: LiveContext,
  videoId: string,
  receivedSeconds: number,
): Promise<"too soon" | undefined> {
  const job = await ctx.db.job.findFirst({
    where: { videoId, kind: "LIVE", status: "RUNNING" },
    select: { id: true, attempt: true, input: true, dispatchedAt: true },
  });
  if (!job || receivedSeconds >= parseJobInput("LIVE", job.input).options.maxDurationSeconds - 1) return;
  const newestRun = await ctx.db.jobRun.findFirst({
    where: { jobId: job.id, attempt: job.attempt, status: "RUNNING" },
    orderBy: { startedAt: "desc" },
    select: { startedAt: true },
  });
  const newest = Math.max(job.dispatchedAt?.getTime() ?? 0, newestRun?.startedAt.getTime() ?? 0);
  if (Date.now() - newest < READERLESS_TAKEOVER_MS) return "too soon";
  const runs = await requeueEncode(ctx, job, ["RUNNING"], null);
  if (!runs) return;
  log.warn("live: the broadcast's encode lost its feed; queued again for another run to take it over", {
    videoId,
    jobId: job.id,
    runs: runs.map((r) => r.workerId),
  });
  ctx.dispatcher.kick();
}

/**
 * A broadcast's LIVE job back in the queue for another run to take it over, due at `runAfter`
 * (null: now), if it is still in one of `statuses`: its runs ABANDONED (what they report after is
 * a superseded run's), their workers told to stop them (a dead one hears nothing); `input`, when
 * given, is the job's from now on (its feed's new address). The runs, or null when the job had
 * moved on.
 */
export async function requeueEncode(
  ctx: LiveContext,
  job: { id: string; attempt: number },
  statuses: ("QUEUED" | "RUNNING")[],
  runAfter: Date | null,
  input?: StoredJobInput<"LIVE">,
): Promise<{ workerId: string }[] | null> {
  const runs = await ctx.db.jobRun.findMany({
    where: { jobId: job.id, attempt: job.attempt, status: "RUNNING" },
    select: { id: true, workerId: true, runId: true },
  });
  // Every message the attempt's runs were delivered (a run handed back at shutdown is ABANDONED already).
  const delivered = await ctx.db.jobRun.findMany({
    where: { jobId: job.id, attempt: job.attempt, deliveryMessageId: { not: null } },
    select: { deliveryMessageId: true },
  });
  const { dispatchedTo } = await ctx.db.job.findUniqueOrThrow({
    where: { id: job.id },
    select: { dispatchedTo: true },
  });
  const queued = await ctx.db.$transaction(async (tx) => {
    const { count } = await tx.job.updateMany({
      where: { id: job.id, attempt: job.attempt, status: { in: statuses } },
      data: {
        status: "QUEUED",
        dispatchedAt: null,
        workerId: null,
        runId: "",
        runAfter,
        ...(input ? { input } : {}),
      },
    });
    if (count === 0) return false;
    await tx.jobRun.updateMany({
      where: { id: { in: runs.map((r) => r.id) }, status: "RUNNING" },
      data: { status: "ABANDONED", finishedAt: new Date() },
    });
    return true;
  });
  if (!queued) return null;
  for (const run of runs) if (run.runId) await ctx.stopRun(job.id, job.attempt, run.workerId, run.runId);
  // The runs' messages go too: a handed-back or lapsed one delivered again would be a second run
  // beside the one the dispatcher sends now (docs/live.md, "When the encode's process dies").
  await withdrawDeliveries(ctx, dispatchedTo, delivered);
  return runs;
}

/** Withdraws the transport's messages of a broadcast's runs taken over (`dispatchedTo`: their queue). */
async function withdrawDeliveries(
  ctx: LiveContext,
  dispatchedTo: string | null,
  runs: { deliveryMessageId: string | null }[],
): Promise<void> {
  const queue = Capability.safeParse(dispatchedTo ?? "live");
  for (const messageId of new Set(runs.map((r) => r.deliveryMessageId)))
    if (messageId && queue.success)
      await ctx
        .withdrawJob?.(queue.data, messageId)
        .catch((err) =>
          log.warn("live: a taken-over run's message could not be withdrawn", { messageId, err: String(err) }),
        );
}

/**
 * Hands this instance's broadcasts on (a deploy: SIGTERM): each one's publisher, cut off by the
 * ingest's close, continues it by reconnecting to any API instance within its reconnect window
 * (handOff). A broadcast that cannot be handed on (its job ended, the database unreachable)
 * has its feed ended: its encode finishes it with what it has.
 */
export async function handOffAll(ctx: LiveContext): Promise<void> {
  for (const { timer } of ctx.graces.values()) clearTimeout(timer);
  ctx.graces.clear();
  const held = [...ctx.feeds];
  // A publisher reconnecting to another instance meanwhile waits for the hold (adoptBroadcast).
  for (const [videoId] of held) ctx.handingOn.add(videoId);
  ctx.feeds.clear();
  await Promise.all(
    held.map(async ([videoId, entry]) => {
      const handed = await handOff(ctx, videoId, entry.reconnectWindowSeconds).catch((err) => {
        log.error("live: a broadcast could not be handed on; it ends with what it has", { videoId, err });
        return false;
      });
      if (!handed) entry.feed.end();
      // Its job waits for another instance now: the hold goes (a feed ended keeps it to the end).
      else await ctx.holds.release(videoId).catch(() => {});
      ctx.handingOn.delete(videoId);
    }),
  );
}

/**
 * Hands a broadcast held here on (a deploy stops this instance): its encode's runs are stopped
 * without ending it (they are told to stop before the feed's connection goes, and what they
 * report then is a superseded run's), and its job waits, queued, for its publisher's reconnect to
 * any API instance (adoptBroadcast) until its reconnect window has passed; then it is dispatched
 * as it is, and its run ends it with what was published (render-worker/handlers/live.ts).
 */
async function handOff(ctx: LiveContext, videoId: string, reconnectWindowSeconds: number): Promise<boolean> {
  const job = await liveJobOf(ctx, videoId);
  if (!job) return false;
  const waitUntil = new Date(Date.now() + reconnectWindowSeconds * 1000);
  if (!(await requeueEncode(ctx, job, ["QUEUED", "RUNNING"], waitUntil))) return false;
  log.info("live: broadcast handed on; its publisher's reconnect to any API instance continues it", {
    videoId,
    until: waitUntil.toISOString(),
  });
  return true;
}
