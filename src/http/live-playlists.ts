/**
 * A live broadcast's rung playlists as viewers get them while they grow: the DVR window, and blocking playlist
 * reload (RFC 8216bis 6.2.5.2), which answers `_HLS_msn=N` the moment segment N is listed (at most three target
 * durations): polling added a fixed phase of up to a segment to each viewer's latency (docs/live.md, "Latency").
 */

import { mediaPlaylistEnd, slidingWindowPlaylist } from "../storage/playlists.ts";

/** What a held request came to: its segment is listed, or it waited its longest, or it asked too far ahead. */
export type BlockingOutcome = "ready" | "timed out" | "too far ahead";

/** A request's delivery directives: none, the segment it waits for, or why they are refused (400). */
export type DeliveryDirectives = null | { msn: number } | { problem: string };

/** Decimal digits only, at most this many: a media sequence number (RFC 8216bis 4.4.3.2 allows up to 2^64). */
const MAX_DIRECTIVE_DIGITS = 15;

/**
 * A request's `_HLS_msn` (and `_HLS_part`, which needs it), read as RFC 8216bis 6.2.5.2 says.
 * These playlists have no partial segments, so the part a request names is in segment `_HLS_msn`,
 * which is what it waits for. `_HLS_skip` is left alone: no playlist offers delta updates.
 */
export function deliveryDirectives(url: URL): DeliveryDirectives {
  const msn = url.searchParams.get("_HLS_msn");
  const part = url.searchParams.get("_HLS_part");
  const decimal = (value: string) =>
    value.length > 0 && value.length <= MAX_DIRECTIVE_DIGITS && [...value].every((c) => c >= "0" && c <= "9");
  if (msn === null) return part === null ? null : { problem: "_HLS_part needs _HLS_msn" };
  if (!decimal(msn)) return { problem: "_HLS_msn is a media sequence number" };
  if (part !== null && !decimal(part)) return { problem: "_HLS_part is a part index" };
  return { msn: Number(msn) };
}

/** The tag that tells a player it may ask with `_HLS_msn`. */
const CAN_BLOCK_RELOAD = "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES";

/** `text` with CAN-BLOCK-RELOAD after its target duration, where an EXT-X-SERVER-CONTROL tag belongs. */
function withBlockingReload(text: string): string {
  const lines = text.split("\n");
  const target = lines.findIndex((l) => l.startsWith("#EXT-X-TARGETDURATION:"));
  if (target < 0 || lines.some((l) => l.startsWith("#EXT-X-SERVER-CONTROL:"))) return text;
  lines.splice(target + 1, 0, CAN_BLOCK_RELOAD);
  return lines.join("\n");
}

/** What the API last read of one live rung playlist. */
interface Seen {
  version: string;
  /** The last listed segment's media sequence number (-1: none yet). */
  lastMsn: number;
  targetDuration: number;
  finished: boolean;
  /** When a read last found a new segment (or first found the playlist). */
  advancedAt: number;
  /** The text viewers get (the window, or the whole text), without and with CAN-BLOCK-RELOAD: cut once per version. */
  served: { plain: string; blocking: string };
  waiters: Set<{ msn: number; done: (outcome: BlockingOutcome) => void }>;
  polling: boolean;
}

export interface LivePlaylistOptions {
  /** `LIVE_DVR_WINDOW_SECONDS`: how much of a broadcast its viewers' playlists list; 0 lists all of it. */
  windowSeconds: number;
  /** The stored playlist at `key`, or null. */
  readText: (key: string) => Promise<string | null>;
  /** How often a playlist with held requests is read, as a fraction of its target duration. */
  pollFraction?: number;
  now?: () => number;
}

/**
 * Live playlists remembered: every rendition of 500 broadcasts on air, about 30 KB each at the
 * default window (900 segments).
 */
const MAX_LIVE_PLAYLISTS = 2000;

/** A held request waits at most this many target durations (RFC 8216bis 6.2.5.2: three). */
const MAX_HOLD_TARGET_DURATIONS = 3;

/**
 * A player may ask for the segment after the next one, no further (RFC 8216bis 6.2.5.2: "plus two";
 * further ahead is a Bad Request).
 */
const MAX_SEGMENTS_AHEAD = 2;

export function createLivePlaylists(options: LivePlaylistOptions) {
  const { windowSeconds } = options;
  const now = options.now ?? Date.now;
  const pollFraction = options.pollFraction ?? 0.1;
  const seen = new Map<string, Seen>();
  const reading = new Map<string, Promise<string | null>>();
  /**
   * One read of `key` at a time, shared by every request that asks while it runs: the players of a
   * broadcast ask together, right after a segment, and each reading for itself would queue hundreds
   * of reads (and the worker's next write) behind each other.
   */
  const readText = (key: string): Promise<string | null> => {
    let pending = reading.get(key);
    if (!pending) {
      pending = options.readText(key).finally(() => reading.delete(key));
      reading.set(key, pending);
    }
    return pending;
  };
  // A live playlist only grows at its end: its length and last line tell one version from the next.
  const versionOf = (text: string) => `${text.length}:${text.slice(-64)}`;

  /** Remembers `text` as the newest of `key`, waking the held requests it answers. */
  function observe(key: string, text: string): Seen {
    const version = versionOf(text);
    let entry = seen.get(key);
    if (entry?.version === version) return entry;
    const end = mediaPlaylistEnd(text);
    const lastMsn = end.lastSequence;
    const targetDuration = Math.min(Math.max(end.targetDuration, 1), 30);
    const finished = end.finished;
    const plain = (finished || windowSeconds <= 0 ? null : slidingWindowPlaylist(text, windowSeconds)) ?? text;
    const served = { plain, blocking: finished ? plain : withBlockingReload(plain) };
    if (!entry) {
      if (seen.size >= MAX_LIVE_PLAYLISTS) forgetIdle();
      entry = {
        version,
        lastMsn,
        targetDuration,
        finished,
        advancedAt: now(),
        served,
        waiters: new Set(),
        polling: false,
      };
      seen.set(key, entry);
    } else {
      if (lastMsn > entry.lastMsn) entry.advancedAt = now();
      Object.assign(entry, { version, lastMsn, targetDuration, finished, served });
    }
    for (const waiter of entry.waiters) if (finished || waiter.msn <= lastMsn) waiter.done("ready");
    // A finished playlist no longer changes: served as stored, it needs no entry once nobody waits.
    if (finished && entry.waiters.size === 0) seen.delete(key);
    return entry;
  }

  /** Drops what is remembered of the playlists nobody waits on (at the bound: many broadcasts ended). */
  function forgetIdle() {
    for (const [key, entry] of seen) if (entry.waiters.size === 0) seen.delete(key);
  }

  /** Reads `key` again every tenth of a target duration while requests wait on it. */
  function poll(key: string, entry: Seen) {
    if (entry.polling) return;
    entry.polling = true;
    const tick = async () => {
      const text = await readText(key).catch(() => null);
      if (text !== null) observe(key, text);
      if (entry.waiters.size === 0) {
        entry.polling = false;
        if (entry.finished) seen.delete(key);
        return;
      }
      setTimeout(tick, entry.targetDuration * 1000 * pollFraction).unref();
    };
    setTimeout(tick, entry.targetDuration * 1000 * pollFraction).unref();
  }

  return {
    /**
     * Holds a request for segment `msn` of the live playlist at `key` until the playlist lists it or
     * ends, at most three target durations; "too far ahead" at once for a segment more than two past
     * the last listed. One read of the playlist serves every request waiting on it.
     */
    async waitFor(key: string, msn: number): Promise<BlockingOutcome> {
      let entry = seen.get(key);
      // What this instance last read may be older than what the player saw (another instance
      // answered it): read again unless a poll keeps it fresh.
      if (!entry || (!entry.polling && !entry.finished && msn > entry.lastMsn)) {
        const text = await readText(key);
        if (text === null) return "ready";
        entry = observe(key, text);
      }
      if (entry.finished || msn <= entry.lastMsn) return "ready";
      if (msn > entry.lastMsn + MAX_SEGMENTS_AHEAD) return "too far ahead";
      const held = entry;
      return new Promise<BlockingOutcome>((resolve) => {
        const waiter = {
          msn,
          done: (outcome: BlockingOutcome) => {
            clearTimeout(timer);
            held.waiters.delete(waiter);
            resolve(outcome);
          },
        };
        const timer = setTimeout(
          () => waiter.done("timed out"),
          held.targetDuration * 1000 * MAX_HOLD_TARGET_DURATIONS,
        );
        held.waiters.add(waiter);
        poll(key, held);
      });
    },

    /**
     * Live rung `key`'s stored playlist as viewers get it: its last `windowSeconds`, shared until it grows, with
     * CAN-BLOCK-RELOAD while it has gained a segment in the last three target durations; a stalled publisher's
     * loses the tag, so players poll rather than wait on a segment that may not come.
     */
    view(key: string, text: string): { text: string; growing: boolean; targetDuration: number } {
      const entry = observe(key, text);
      if (entry.finished) return { text, growing: false, targetDuration: entry.targetDuration };
      const advancing = now() - entry.advancedAt < entry.targetDuration * 1000 * MAX_HOLD_TARGET_DURATIONS;
      return {
        text: advancing ? entry.served.blocking : entry.served.plain,
        growing: true,
        targetDuration: entry.targetDuration,
      };
    },
  };
}

export type LivePlaylists = ReturnType<typeof createLivePlaylists>;
