import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listenWithReconnect } from "../render-worker/transport/postgres-listener.ts";
import { EVENTS_CHANNEL, notificationPayload, PostgresEventTarget, RESYNC } from "../src/events/postgres-event-target.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

/**
 * Both programs' LISTEN connections through an outage longer than one reconnect attempt, as a
 * restart or a failover is: the listeners log in as a role of their own, which the test locks
 * out (NOLOGIN) and whose connections it terminates, then lets back in.
 */
describe("LISTEN connections come back by themselves after an outage of several seconds", () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let listenerUrl: string;
  const role = `videograph_listener_${randomBytes(4).toString("hex")}`;

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`CREATE ROLE "${role}" LOGIN`);
    const url = new URL(db.url);
    url.username = role;
    listenerUrl = url.toString();
  });
  afterAll(async () => {
    await admin.query(`DROP ROLE IF EXISTS "${role}"`);
    await admin.end();
    await db.drop();
  });

  /** No connection of the role for `ms`: its backends are terminated and new logins refused. */
  async function outage(ms: number): Promise<void> {
    await admin.query(`ALTER ROLE "${role}" NOLOGIN`);
    try {
      const { rowCount } = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      expect(rowCount).toBe(1);
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      await admin.query(`ALTER ROLE "${role}" LOGIN`);
    }
  }

  it("the API's event fan-out listens again and tells its subscribers to re-read, without an event to send", async () => {
    const target = new PostgresEventTarget<never>(listenerUrl);
    await target.start();
    const received: unknown[] = [];
    target.addEventListener("some-topic" as never, (e: Event) => received.push((e as CustomEvent).detail));
    try {
      await outage(2500);
      await expect.poll(() => received, { timeout: 8000, interval: 100 }).toContainEqual(RESYNC);
      await admin.query("SELECT pg_notify($1, $2)", [EVENTS_CHANNEL, notificationPayload("some-topic", { after: true })]);
      await expect.poll(() => received, { timeout: 2000, interval: 50 }).toContainEqual({ after: true });
    } finally {
      await target.close();
    }
  });

  it("the worker's control listener listens again and reports it once, so the worker can ask for what it missed", async () => {
    const payloads: string[] = [];
    let reconnected = 0;
    const listener = await listenWithReconnect({
      connectionString: listenerUrl,
      channel: "videograph_test_control",
      onNotification: (p) => payloads.push(p),
      onReconnected: () => reconnected++,
    });
    try {
      await admin.query("NOTIFY videograph_test_control, 'before'");
      await expect.poll(() => payloads, { timeout: 2000, interval: 50 }).toEqual(["before"]);
      await outage(2500);
      await admin.query("NOTIFY videograph_test_control, 'during'");
      await expect.poll(() => reconnected, { timeout: 8000, interval: 100 }).toBe(1);
      await admin.query("NOTIFY videograph_test_control, 'after'");
      await expect.poll(() => payloads, { timeout: 2000, interval: 50 }).toEqual(["before", "after"]);
    } finally {
      await listener.close();
    }
  });
});
