import type pg from "pg";
import { listenWithReconnect, type PostgresListener } from "../shared/postgres-listener.ts";
import { log } from "../log.ts";

/**
 * The first key of every broadcast's hold (a session-level advisory lock `(HOLD_LOCK_SPACE,
 * hashtext(videoId))`): apart from the other advisory locks (single bigint keys).
 */
const HOLD_LOCK_SPACE = 6601;
/**
 * The hold's session tells Postgres to drop a client that stopped answering (its machine gone, no
 * FIN or RST) within about 11 s: 5 s idle, then 3 probes 2 s apart, and 10 s for unacknowledged data.
 */
const SESSION_SETTINGS =
  "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000";
/** The channel the hold's connection listens on: nothing is sent there, the listener only keeps the session up. */
const HOLDS_CHANNEL = "videograph_live_holds";

/**
 * Which API instance holds each broadcast, as Postgres sees it: an instance holds a broadcast's
 * advisory lock on a session of its own for as long as it serves its feed (or finishes it), and
 * Postgres lets go of it when that process dies (SIGKILL, a crash) or hands it on. So another
 * instance adopts a broadcast only when its holder is gone (docs/live.md, "A crash of the API
 * holding a broadcast"), never one whose holder is alive.
 */
export interface BroadcastHolds {
  /** Takes `videoId`'s hold for this instance; false: another instance holds it. */
  take(videoId: string): Promise<boolean>;
  /** Lets go of `videoId`'s hold (its broadcast ended, or was handed on); nothing when not held. */
  release(videoId: string): Promise<void>;
  /** Whether an API instance (this one included) holds `videoId`'s broadcast now. */
  held(videoId: string): Promise<boolean>;
  /** Those of `videoIds` whose broadcast no API instance holds now (one query). */
  unheld(videoIds: readonly string[]): Promise<Set<string>>;
  close(): Promise<void>;
}

/**
 * The holds over one connection of their own (kept up through restarts, as the event fan-out's is).
 * After a lost connection every hold is taken again (`onRetaken` hears each); one another instance
 * took meanwhile is lost, and `onLost` hears it (its feed here is dropped).
 */
export function createBroadcastHolds(options: {
  connectionString: string;
  onLost: (videoId: string) => void;
  /** A hold taken again after the connection came back (its stream may have been said disconnected meanwhile). */
  onRetaken?: (videoId: string) => void;
}): BroadcastHolds {
  const mine = new Set<string>();
  const configured = new WeakSet<pg.Client>();
  // Reconnected: the session's locks went with the old connection; they are taken again, in order.
  let retaking = Promise.resolve();
  // Opened on the first broadcast: an instance that never holds one keeps no session for it.
  let opened: Promise<PostgresListener> | null = null;
  const open = () =>
    listenWithReconnect({
      connectionString: options.connectionString,
      channel: HOLDS_CHANNEL,
      name: "live broadcast holds",
      log,
      onNotification: () => {},
      onReconnected: () => {
        retaking = retaking.then(async () => {
          for (const videoId of [...mine]) {
            const taken = await tryLock(videoId).catch(() => false);
            if (taken) {
              options.onRetaken?.(videoId);
              continue;
            }
            mine.delete(videoId);
            log.error("live: another API instance took a broadcast's hold while this one's connection was down", {
              videoId,
            });
            options.onLost(videoId);
          }
        });
      },
    });

  async function session(): Promise<pg.Client> {
    opened ??= open().catch((err: unknown) => {
      opened = null;
      throw err;
    });
    const client = await (await opened).connection();
    if (!configured.has(client)) {
      await client.query(SESSION_SETTINGS);
      configured.add(client);
    }
    return client;
  }

  async function query<T extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<T>> {
    const client = await session();
    try {
      return await client.query<T>(text, values);
    } catch (err) {
      (await opened)?.queryFailed(client, err);
      throw err;
    }
  }

  async function tryLock(videoId: string): Promise<boolean> {
    const { rows } = await query<{ taken: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS taken", [
      HOLD_LOCK_SPACE,
      videoId,
    ]);
    return rows[0]?.taken === true;
  }

  /** Those of `videoIds` whose broadcast no API instance holds now. */
  async function unheld(videoIds: readonly string[]): Promise<Set<string>> {
    const others = videoIds.filter((videoId) => !mine.has(videoId));
    if (others.length === 0) return new Set();
    // The two-key form: classid is the first key, objid the second, objsubid 2.
    const { rows } = await query<{ videoId: string }>(
      `SELECT v AS "videoId" FROM unnest($2::text[]) AS v WHERE NOT EXISTS (
         SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
           AND classid = $1::int::oid AND objid = hashtext(v)::oid)`,
      [HOLD_LOCK_SPACE, others],
    );
    return new Set(rows.map((row) => row.videoId));
  }

  return {
    async take(videoId) {
      await retaking;
      // Session locks stack: one this session has already is not taken twice.
      if (mine.has(videoId)) return true;
      const taken = await tryLock(videoId);
      if (taken) mine.add(videoId);
      return taken;
    },
    async release(videoId) {
      if (!mine.delete(videoId)) return;
      await query("SELECT pg_advisory_unlock($1, hashtext($2))", [HOLD_LOCK_SPACE, videoId]);
    },
    held: async (videoId) => !(await unheld([videoId])).has(videoId),
    unheld,
    async close() {
      const listener = await opened?.catch(() => null);
      await listener?.close();
    },
  };
}
