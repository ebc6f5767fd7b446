import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { databaseUnavailable } from "../src/shared/database-errors.ts";
import {
  EVENTS_CHANNEL,
  notificationPayload,
  PostgresEventTarget,
  RESYNC,
} from "../src/events/postgres-event-target.ts";
import { log } from "../src/log.ts";
import { listenWithReconnect } from "../src/shared/postgres-listener.ts";
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
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`,
        [role],
      );
      expect(rowCount).toBe(1);
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      await admin.query(`ALTER ROLE "${role}" LOGIN`);
    }
  }

  it(`the API's event fan-out listens again and tells its subscribers to re-read, without an \
event to send`, async () => {
    const target = new PostgresEventTarget<never>(listenerUrl);
    await target.start();
    const received: unknown[] = [];
    target.addEventListener("some-topic" as never, (e: Event) => received.push((e as CustomEvent).detail));
    try {
      await outage(2500);
      await expect.poll(() => received, { timeout: 8000, interval: 100 }).toContainEqual(RESYNC);
      await admin.query("SELECT pg_notify($1, $2)", [
        EVENTS_CHANNEL,
        notificationPayload("some-topic", { after: true }),
      ]);
      await expect.poll(() => received, { timeout: 2000, interval: 50 }).toContainEqual({ after: true });
    } finally {
      await target.close();
    }
  });

  it(`an event the fan-out is asked to send while its database refuses it goes out once it is back, to every \
instance`, async () => {
    const sender = new PostgresEventTarget<never>(listenerUrl);
    const otherInstance = new PostgresEventTarget<never>(db.url);
    await sender.start();
    await otherInstance.start();
    const received: unknown[] = [];
    otherInstance.addEventListener("some-topic" as never, (e: Event) => received.push((e as CustomEvent).detail));
    try {
      await admin.query(`ALTER ROLE "${role}" NOLOGIN`);
      try {
        await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
        sender.dispatchEvent(new CustomEvent("some-topic", { detail: { during: true } }) as never);
        await new Promise((r) => setTimeout(r, 1500));
        expect(received).toEqual([]);
      } finally {
        await admin.query(`ALTER ROLE "${role}" LOGIN`);
      }
      await expect.poll(() => received, { timeout: 8000, interval: 100 }).toEqual([{ during: true }]);
    } finally {
      await sender.close();
      await otherInstance.close();
    }
  });

  it(`the worker's control listener listens again and reports it once, so the worker can ask for \
what it missed`, async () => {
    const payloads: string[] = [];
    let reconnected = 0;
    const listener = await listenWithReconnect({
      connectionString: listenerUrl,
      channel: "videograph_test_control",
      name: "control channel",
      log,
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

  it(`a worker's event send tells a lost connection, an absent server or a refused login (retried) from a refused \
request (not retried)`, async () => {
    const errorOf = (p: Promise<unknown>) =>
      p.then(
        () => null,
        (err: unknown) => err,
      );
    const closedPort = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const unreachable = new pg.Client({ connectionString: `postgresql://x@127.0.0.1:${closedPort}/x` });
    expect(databaseUnavailable(await errorOf(unreachable.connect()))).toBe(true);

    const victim = new pg.Client({ connectionString: listenerUrl });
    victim.on("error", () => {});
    await victim.connect();
    const { rows } = await victim.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const sleeping = errorOf(victim.query("SELECT pg_sleep(10)"));
    await expect
      .poll(
        async () =>
          (
            await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%'", [
              rows[0]!.pid,
            ])
          ).rowCount,
      )
      .toBe(1);
    await admin.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
    expect(databaseUnavailable(await sleeping)).toBe(true);
    await victim.end().catch(() => {});

    await admin.query(`ALTER ROLE "${role}" NOLOGIN`);
    try {
      expect(databaseUnavailable(await errorOf(new pg.Client({ connectionString: listenerUrl }).connect()))).toBe(true);
    } finally {
      await admin.query(`ALTER ROLE "${role}" LOGIN`);
    }

    expect(databaseUnavailable(await errorOf(admin.query("SELECT * FROM no_such_table")))).toBe(false);
    expect(databaseUnavailable(await errorOf(admin.query("SELECT pg_notify('x', repeat('y', 9000))")))).toBe(false);
  });

  it(`both LISTENs notice a connection that went silent (a failover without a goodbye), give up on a connect that \
hangs, and listen again`, async () => {
    const proxy = await startFreezableProxy(new URL(listenerUrl));
    const viaProxy = new URL(listenerUrl);
    viaProxy.port = String(proxy.port);
    const target = new PostgresEventTarget<never>(viaProxy.toString());
    await target.start();
    const fanOut: unknown[] = [];
    target.addEventListener("some-topic" as never, (e: Event) => fanOut.push((e as CustomEvent).detail));
    let reconnected = 0;
    const control: string[] = [];
    const listener = await listenWithReconnect({
      connectionString: viaProxy.toString(),
      channel: "videograph_test_silent",
      name: "control channel",
      log,
      onNotification: (p) => control.push(p),
      onReconnected: () => reconnected++,
    });
    try {
      proxy.freezeOpenConnections();
      // A probe every 10 s that times out after 5 s notices within 15 s; the first new connections
      // are accepted and never answered, which a connect timeout of 10 s ends.
      proxy.setSwallowNew(true);
      await expect.poll(() => proxy.swallowed(), { timeout: 20_000, interval: 200 }).toBe(2);
      proxy.setSwallowNew(false);
      await expect.poll(() => reconnected, { timeout: 15_000, interval: 200 }).toBe(1);
      await expect.poll(() => fanOut, { timeout: 15_000, interval: 200 }).toContainEqual(RESYNC);
      await admin.query("NOTIFY videograph_test_silent, 'after'");
      await expect.poll(() => control, { timeout: 2000, interval: 50 }).toEqual(["after"]);
    } finally {
      await listener.close();
      await target.close();
      proxy.close();
    }
  }, 60_000);
});

/**
 * A TCP proxy to the test's Postgres whose open connections can be frozen: bytes stop flowing both
 * ways without either end being told, as when a failover moves the server's address away.
 */
async function startFreezableProxy(target: URL): Promise<{
  port: number;
  freezeOpenConnections(): void;
  setSwallowNew(on: boolean): void;
  swallowed(): number;
  close(): void;
}> {
  const open = new Set<[net.Socket, net.Socket]>();
  const held: net.Socket[] = [];
  let swallowNew = false;
  const server = net.createServer((client) => {
    if (swallowNew) {
      client.on("error", () => {});
      held.push(client);
      return;
    }
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    open.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freezeOpenConnections() {
      for (const [client, upstream] of open) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
      open.clear();
    },
    setSwallowNew(on) {
      swallowNew = on;
    },
    swallowed: () => held.length,
    close() {
      for (const socket of held) socket.destroy();
      server.close();
    },
  };
}
