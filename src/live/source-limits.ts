import { isIPv4, isIPv6 } from "node:net";
import { liveIngestSourceRefusals } from "../metrics.ts";
import type { IngestSessions } from "./publisher.ts";
import { UNKNOWN_STREAM_KEY } from "./stream-keys.ts";

/** Per-source limits of the live ingests (docs/live.md, "Limits and refusals"). */
export interface SourceLimitSettings {
  /** RTMP and SRT connections one source may hold at once. */
  maxConnectionsPerSource: number;
  /** Of those, connections whose key has not been accepted yet. */
  maxHandshakesPerSource: number;
  /** Wrong keys one source may send in KEY_FAILURE_WINDOW_MS before its publishes are refused for a while. */
  maxKeyFailuresPerSource: number;
}

const KEY_FAILURE_WINDOW_MS = 60_000;
/** The first refusal after too many wrong keys; each one after it doubles, up to the longest. */
const FIRST_BACKOFF_MS = 60_000;
const LONGEST_BACKOFF_MS = 60 * 60_000;
/** A source with no connection and no wrong key for this long is forgotten (its back-off with it). */
const FORGET_AFTER_MS = LONGEST_BACKOFF_MS;
/** Sources remembered at most: past it the longest-idle one without a connection is forgotten. */
const MAX_REMEMBERED_SOURCES = 10_000;
const SWEEP_INTERVAL_MS = 60_000;
export const KEY_GUESSING_REFUSAL = "too many wrong stream keys from this address: try again later";

type Ingest = "rtmp" | "srt";
type LimitName = "connections" | "handshakes" | "key guesses";

interface SourceState {
  connections: number;
  handshakes: number;
  failures: number;
  failureWindowStart: number;
  /** Back-offs served since the source was last forgotten: each doubles the next. */
  backoffs: number;
  blockedUntil: number;
  lastActive: number;
}

/** One ingest connection as its source's limits count it. */
export interface SourceConnection {
  /** Its key was accepted: it no longer counts as a handshake. */
  keyAccepted(): void;
  /** It sent a key that names no stream (or no key at all). */
  keyRefused(): void;
  /** Why its source may not publish now, or null. */
  publishRefusal(): string | null;
  /** It is closed (idempotent). */
  close(): void;
}

/**
 * The source a connection is counted under: an IPv4 address (an IPv4-mapped IPv6 one as its IPv4),
 * or an IPv6 address's /64, the block one subscriber usually gets. Linear; no pattern.
 */
export function sourceOf(address: string): string {
  const zone = address.indexOf("%");
  const bare = zone === -1 ? address : address.slice(0, zone);
  const lower = bare.toLowerCase();
  if (lower.startsWith("::ffff:") && isIPv4(lower.slice(7))) return lower.slice(7);
  if (!isIPv6(lower)) return lower;
  const gap = lower.indexOf("::");
  const groupsOf = (part: string) =>
    part === "" ? [] : part.split(":").flatMap((g) => (g.includes(".") ? ["0", "0"] : [g]));
  const head = groupsOf(gap === -1 ? lower : lower.slice(0, gap));
  const tail = gap === -1 ? [] : groupsOf(lower.slice(gap + 2));
  const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill("0"), ...tail];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/**
 * Per-source accounting shared by the RTMP and SRT ingests: connections and handshakes open per
 * source, and wrong keys per source with a back-off that grows, decided without a database lookup.
 * So one address cannot fill an ingest's LIVE_MAX_CONNECTIONS or guess keys at the database's pace.
 * Memory is bounded: sources with a connection are at most the ingests' connections, the others
 * at most MAX_REMEMBERED_SOURCES, forgotten once idle.
 */
export function createSourceLimits(settings: SourceLimitSettings, now: () => number = Date.now) {
  const sources = new Map<string, SourceState>();
  let lastSweep = now();

  const forgettable = (state: SourceState, at: number) =>
    state.connections === 0 && at >= state.blockedUntil && at - state.lastActive > FORGET_AFTER_MS;

  const sweep = (at: number) => {
    if (at - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = at;
    for (const [source, state] of sources) if (forgettable(state, at)) sources.delete(source);
  };

  /** A source's state, most recently used last (Map order), so the first idle one is the longest idle. */
  const stateOf = (source: string, at: number): SourceState => {
    let state = sources.get(source);
    if (state) sources.delete(source);
    else {
      if (sources.size >= MAX_REMEMBERED_SOURCES) {
        for (const [idle, s] of sources)
          if (s.connections === 0) {
            sources.delete(idle);
            break;
          }
      }
      state = {
        connections: 0,
        handshakes: 0,
        failures: 0,
        failureWindowStart: at,
        backoffs: 0,
        blockedUntil: 0,
        lastActive: at,
      };
    }
    sources.set(source, state);
    return state;
  };

  const refuse = (ingest: Ingest, limit: LimitName, reason: string) => {
    liveIngestSourceRefusals.inc({ protocol: ingest, limit });
    return { refused: reason };
  };

  return {
    settings,
    /** A connection from `address` on an ingest: its accounting, or why it is refused (it is closed at once). */
    admit(ingest: Ingest, address: string): SourceConnection | { refused: string } {
      const at = now();
      sweep(at);
      const source = sourceOf(address);
      const state = stateOf(source, at);
      if (at < state.blockedUntil) return refuse(ingest, "key guesses", KEY_GUESSING_REFUSAL);
      if (state.connections >= settings.maxConnectionsPerSource)
        return refuse(
          ingest,
          "connections",
          `more than ${settings.maxConnectionsPerSource} connections from ${source}`,
        );
      if (state.handshakes >= settings.maxHandshakesPerSource)
        return refuse(
          ingest,
          "handshakes",
          `more than ${settings.maxHandshakesPerSource} connections from ${source} without an accepted key`,
        );
      state.connections++;
      state.handshakes++;
      state.lastActive = at;
      let handshaking = true;
      let open = true;
      const endHandshake = () => {
        if (!handshaking) return;
        handshaking = false;
        state.handshakes--;
      };
      return {
        keyAccepted: endHandshake,
        keyRefused() {
          const failedAt = now();
          state.lastActive = failedAt;
          if (failedAt - state.failureWindowStart > KEY_FAILURE_WINDOW_MS) {
            state.failureWindowStart = failedAt;
            state.failures = 0;
          }
          if (++state.failures <= settings.maxKeyFailuresPerSource) return;
          state.blockedUntil = failedAt + Math.min(FIRST_BACKOFF_MS * 2 ** state.backoffs, LONGEST_BACKOFF_MS);
          state.backoffs++;
          state.failures = 0;
        },
        publishRefusal() {
          if (now() >= state.blockedUntil) return null;
          liveIngestSourceRefusals.inc({ protocol: ingest, limit: "key guesses" });
          return KEY_GUESSING_REFUSAL;
        },
        close() {
          if (!open) return;
          open = false;
          endHandshake();
          state.connections--;
          state.lastActive = now();
        },
      };
    },
  };
}

export type SourceLimits = ReturnType<typeof createSourceLimits>;

/**
 * The sessions one connection publishes through: a source refused for guessing is refused before
 * the key is looked up, a key that names no stream counts against its source, and an accepted key
 * ends its handshake.
 */
export function sessionsCountedBySource(sessions: IngestSessions, connection: SourceConnection): IngestSessions {
  return {
    ...sessions,
    async authorize(key) {
      const refusal = connection.publishRefusal();
      if (refusal) return { refused: refusal };
      const result = await sessions.authorize(key);
      if ("streamId" in result) connection.keyAccepted();
      else if (result.refused === UNKNOWN_STREAM_KEY) connection.keyRefused();
      return result;
    },
  };
}
