import { createHash, randomBytes } from "node:crypto";
import { hostname } from "node:os";
import pg from "pg";
import { processAlive } from "../../src/shared/proc-stat.ts";
import { inject } from "vitest";
import { EVENTS_CHANNEL } from "../../src/events/postgres-event-target.ts";

/** Every test database's name starts so; `dropRunDatabases` looks for it. */
const PREFIX = "videograph_test_";

/** This machine, in a test database's name: only its own runs' processes can be checked. */
const HOST = createHash("sha256").update(hostname()).digest("hex").slice(0, 6);

/**
 * The names of a run's test databases begin with its machine and the process id of its global setup,
 * so that a later run can tell whether the run that made a database is still going.
 */
export const runDatabasePrefix = (pid = process.pid) => `${PREFIX}${HOST}_${pid}_`;

export interface TestDatabase {
  url: string;
  /**
   * Ends the database's use: its connections are closed and no new one is let in. It is dropped at the
   * run's end (`dropRunDatabases`, from global-setup.ts), not here: Postgres 15's DROP DATABASE
   * forces an immediate checkpoint, which wrote every other file's dirty pages out again and made their
   * next writes log whole pages (testing.md, "What is done for time").
   */
  drop(): Promise<void>;
}

/** One statement on the database at `url`, on a connection of its own. */
export async function queryDatabase(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

/** A fresh database cloned from the migrated template; `drop` releases it. */
/**
 * A listener of the event fan-out's NOTIFY channel on `url`: every payload it receives, in order
 * (`payloads`, which a test may empty), until `end`.
 */
export async function listenToEventFanOut(url: string): Promise<{ payloads: string[]; end(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const payloads: string[] = [];
  client.on("notification", (n) => payloads.push(n.payload ?? ""));
  await client.query(`LISTEN ${EVENTS_CHANNEL}`);
  return { payloads, end: () => client.end() };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject("adminDatabaseUrl");
  const name = `${inject("testDatabasePrefix")}${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${inject("templateDatabase")}"`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS false`);
        await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Drops, at a run's end, the test databases that are done with (`doneWith`), eight at a time (the
 * pool's connections: their checkpoints run together, and a dropped database's pages are discarded,
 * not written).
 */
export async function dropRunDatabases(adminUrl: string, prefix: string): Promise<void> {
  const admin = new pg.Pool({ connectionString: adminUrl, max: 8 });
  try {
    const { rows } = await admin.query<TestDatabaseRow>(
      "SELECT datname, datallowconn FROM pg_database WHERE starts_with(datname, $1)",
      [PREFIX],
    );
    const done = doneWith(rows, prefix);
    await Promise.all(done.map((name) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)));
  } finally {
    await admin.end();
  }
}

/** A test database as `pg_database` lists it. */
export interface TestDatabaseRow {
  datname: string;
  /** False once its file released it (`drop`). */
  datallowconn: boolean;
}

/**
 * The test databases a run that ends drops: every one of its own (`prefix`: its files have all
 * ended, and a file whose process crashed never released its database), those any run released, and
 * those of an earlier run on this machine whose process is gone (interrupted before its end).
 */
export function doneWith(
  rows: TestDatabaseRow[],
  prefix: string,
  hasEnded = (pid: number) => !processAlive(pid),
): string[] {
  const thisMachine = `${PREFIX}${HOST}_`;
  return rows
    .filter(({ datname, datallowconn }) => {
      if (datname.startsWith(prefix) || !datallowconn) return true;
      if (!datname.startsWith(thisMachine)) return false;
      const pid = Number(datname.slice(thisMachine.length).split("_")[0]);
      return Number.isSafeInteger(pid) && pid > 0 && hasEnded(pid);
    })
    .map((r) => r.datname);
}
