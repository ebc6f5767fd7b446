import type { IncomingMessage, ServerResponse } from "node:http";
import { log } from "../log.ts";
import {
  LIVE_FEED_FROM_HEADER,
  LIVE_PRESENCE_HEADER,
  LIVE_SIMULCAST_HEADER,
  LIVE_SIMULCAST_TARGETS_HEADER,
} from "../protocol/live-messages.ts";
import { forwardedTargets } from "../simulcast/targets.ts";
import { type LiveContext, liveJobOf } from "./live-context.ts";
import { recordGaps } from "./recording-gaps.ts";

/** Where workers read a broadcast's feed: GET {LIVE_FEED_URL}/live/v1/feeds/{videoId}.flv?expires&sig. */
const FEED_PATH_PREFIX = "/live/v1/feeds/";

/** Where workers read a broadcast's feed on this instance, signed for as long as a broadcast may last. */
export function signedFeedUrl(ctx: LiveContext, videoId: string): string {
  const feedPath = `${FEED_PATH_PREFIX}${videoId}.flv`;
  return `${ctx.settings.feedBaseUrl()}${ctx.signer.sign(feedPath, ctx.settings.maxDurationSeconds + 3600)}`;
}

/** Whether `url` is a feed's, which `handleFeed` answers. */
export const matchesFeed = (url: URL) => url.pathname.startsWith(FEED_PATH_PREFIX);

/**
 * GET a broadcast's feed: signed for the worker its job went to. HEAD says what became of it
 * (feedStatus), for a run whose feed's connection ended: 200 it goes on here, 410 it ended,
 * 404 not held here (its instance died, or it is held elsewhere).
 */
export function handleFeed(ctx: LiveContext, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const refused = ctx.signer.check(url);
  const videoId = url.pathname.slice(FEED_PATH_PREFIX.length).replace(/\.flv$/, "");
  if ((req.method !== "GET" && req.method !== "HEAD" && req.method !== "POST") || refused) {
    res.writeHead(403, { "content-type": "text/plain" }).end(`Feed refused: ${refused ?? "GET only"}\n`);
    return;
  }
  if (req.method === "HEAD") {
    feedStatus(ctx, videoId)
      .then((status) => res.writeHead(status, { "cache-control": "no-store" }).end())
      .catch((err) => {
        log.warn("live: a feed's status could not be read", { videoId, err: String(err) });
        res.writeHead(503).end();
      });
    return;
  }
  const held = ctx.feeds.get(videoId) ?? ctx.endedFeeds.held(videoId);
  const feed = held?.feed;
  const presence = req.headers[LIVE_PRESENCE_HEADER];
  if (!feed || (req.method === "POST" && typeof presence !== "string")) {
    res.writeHead(404, { "content-type": "text/plain" }).end("No broadcast of this video on this API instance\n");
    return;
  }
  if (req.method === "GET" && req.headers[LIVE_SIMULCAST_TARGETS_HEADER] !== undefined) {
    answerTargets(ctx, res, held!.streamId);
    return;
  }
  if (req.method === "GET" && req.headers[LIVE_SIMULCAST_HEADER] !== undefined) {
    feed.attachForwarder(res);
    return;
  }
  if (typeof presence === "string") {
    // A run holding the feed while it lives (GET), or saying it is done (POST): feed.ts.
    if (req.method === "POST") {
      feed.presenceDone(presence);
      res.writeHead(204).end();
    } else feed.holdPresence(presence, res);
    return;
  }
  const from = feedFrom(req.headers[LIVE_FEED_FROM_HEADER]);
  const missed = feed.attach(res, from);
  recordGaps(ctx, videoId, held, from, missed, feed.missedFrom);
}

/** A run's `x-videograph-feed-from` (seconds of media time, `LIVE_FEED_FROM_HEADER`), or null when absent or not a time. */
function feedFrom(header: string | string[] | undefined): number | null {
  if (typeof header !== "string" || header.length > 32) return null;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/**
 * What became of a broadcast's feed, as a run whose feed's connection ended asks it: 200 it goes
 * on here; 410 it ended (here, or its encode is over, or it was handed on and its reconnect window
 * passed with no publisher back); 404 this instance does not hold it (its holder died and no
 * instance adopted it yet, or another holds it).
 */
async function feedStatus(ctx: LiveContext, videoId: string): Promise<200 | 404 | 410> {
  const entry = ctx.feeds.get(videoId);
  if (entry && !entry.feed.ended) return 200;
  if (entry || ctx.endedHere.has(videoId)) return 410;
  const job = await liveJobOf(ctx, videoId);
  if (!job) return 410;
  if (job.status === "RUNNING" && job.runAfter !== null && job.runAfter.getTime() <= Date.now()) return 410;
  return 404;
}

/**
 * The stream's simulcast targets, keys opened, for the run forwarding its broadcast
 * (LIVE_SIMULCAST_TARGETS_HEADER).
 */
function answerTargets(ctx: LiveContext, res: ServerResponse, streamId: string): void {
  const targets = ctx.simulcast
    ? forwardedTargets(ctx.db, ctx.simulcast, streamId)
    : Promise.resolve({ allowPrivateAddresses: false, targets: [] });
  targets
    .then((body) =>
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body)),
    )
    .catch((err) => {
      log.warn("live: a stream's simulcast targets could not be read", { streamId, err: String(err) });
      res.writeHead(503).end();
    });
}
