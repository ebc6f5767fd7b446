import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";

/** Every test database's name starts so; `dropReleasedDatabases` looks for it. */
const PREFIX = "videograph_test_";

export interface TestDatabase {
  url: string;
  /**
   * Ends the database's use: its connections are closed and no new one is let in. It is dropped at the
   * run's end (`dropReleasedDatabases`, from global-setup.ts), not here: Postgres 15's DROP DATABASE
   * forces an immediate checkpoint, which wrote every other file's dirty pages out again and made their
   * next writes log whole pages (testing.md, "What is done for time").
   */
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template; `drop` releases it. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject("adminDatabaseUrl");
  const name = `${PREFIX}${randomBytes(6).toString("hex")}`;
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
 * Drops the test databases that were released (`drop`: no connections allowed), this run's and any an
 * earlier run left, eight at a time (the pool's connections): their checkpoints run together, and a
 * dropped database's pages are discarded, not written.
 */
export async function dropReleasedDatabases(adminUrl: string): Promise<void> {
  const admin = new pg.Pool({ connectionString: adminUrl, max: 8 });
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND NOT datallowconn",
      [PREFIX],
    );
    await Promise.all(rows.map((r) => admin.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`)));
  } finally {
    await admin.end();
  }
}
