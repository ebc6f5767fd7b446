import { createHash } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { applyMigrations } from "../../src/db/migrate.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded.ts";
import { canConnect } from "../../src/db/reachable.ts";
import { loadEnv } from "../../src/config.ts";
import { createPostgresTransport } from "../../src/transport/postgres.ts";
import { dropRunDatabases, runDatabasePrefix } from "./db.ts";
import { stopSharedServers } from "./local-server.ts";

declare module "vitest" {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
    templateDatabase: string;
    /** What this run's test databases' names begin with (`runDatabasePrefix`). */
    testDatabasePrefix: string;
    /**
     * The run's own directory: where media-fixtures.ts keeps the clips it generates and
     * local-server.ts the records of the servers every file shares.
     */
    mediaFixturesDir: string;
  }
}

/** What the template is made of: the migrations, and the queues' code and pg-boss's version (`installQueues`). */
async function templateHash(): Promise<string> {
  const dir = path.resolve("prisma/migrations");
  const hash = createHash("sha256");
  for (const name of (await readdir(dir)).sort()) {
    if (name.endsWith(".toml")) continue;
    hash.update(name).update(await readFile(path.join(dir, name, "migration.sql")));
  }
  hash.update(await readFile(path.resolve("src/transport/postgres.ts")));
  hash.update(await readFile(path.resolve("node_modules/pg-boss/package.json")));
  return hash.digest("hex").slice(0, 12);
}

/**
 * One Postgres for the whole run: TEST_DATABASE_URL, else the local server on 127.0.0.1:5432,
 * else an embedded one. A template database is migrated once; each test file clones it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // vitest calls a global setup once for the root and once per project (vitest.config.ts has three):
  // all of them share one Postgres template and one media fixtures directory, torn down after the last.
  const run = globalThis as { videographTestRun?: SharedRun };
  run.videographTestRun ??= { ready: prepareRun(), users: 0 };
  const shared = run.videographTestRun;
  shared.users++;
  const { adminUrl, template, mediaFixturesDir, teardown } = await shared.ready;
  project.provide("adminDatabaseUrl", adminUrl);
  project.provide("templateDatabase", template);
  project.provide("testDatabasePrefix", runDatabasePrefix());
  project.provide("mediaFixturesDir", mediaFixturesDir);
  return async () => {
    if (--shared.users === 0) await teardown();
  };
}

/**
 * pg-boss's schema and the API's queues, as an API's first start on this database makes them: in the
 * template, so that a clone starts like a restarted API (queues found, none created) instead of
 * installing the schema again: the transport's start took 102 ms instead of 206 (testing.md, "Where
 * the time goes"). A first start on an empty database still runs wherever a test starts the API on
 * one of its own (`embedded-start`, `check:start`).
 */
async function installQueues(databaseUrl: string): Promise<void> {
  const { JOB_STALL_SECONDS } = loadEnv({ DATABASE_URL: databaseUrl });
  const transport = createPostgresTransport({ connectionString: databaseUrl, stallSeconds: JOB_STALL_SECONDS });
  await transport.start();
  await transport.stop();
}

interface PreparedRun {
  adminUrl: string;
  template: string;
  mediaFixturesDir: string;
  teardown(): Promise<void>;
}

interface SharedRun {
  ready: Promise<PreparedRun>;
  users: number;
}

async function prepareRun(): Promise<PreparedRun> {
  let adminUrl = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
  let embedded: EmbeddedDatabase | null = null;
  let embeddedDir: string | null = null;
  if (!(await canConnect(adminUrl))) {
    console.warn(`[test] no Postgres at ${adminUrl}; starting an embedded one`);
    embeddedDir = await mkdtemp(path.join(tmpdir(), "videograph-test-pg-"));
    // As root, the embedded Postgres runs as the "postgres" user, which must reach the data dir.
    await chmod(embeddedDir, 0o755);
    embedded = await startEmbeddedPostgres(embeddedDir);
    adminUrl = embedded.url;
  }
  const template = `videograph_tpl_${await templateHash()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query("SELECT pg_advisory_lock(4242)");
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [template]);
    if (!rowCount) {
      const building = `${template}_building`;
      await admin.query(`DROP DATABASE IF EXISTS "${building}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${building}"`);
      const url = new URL(adminUrl);
      url.pathname = `/${building}`;
      await applyMigrations(url.toString());
      await installQueues(url.toString());
      await admin.query(`ALTER DATABASE "${building}" RENAME TO "${template}"`);
    }
    await admin.query("SELECT pg_advisory_unlock(4242)");
  } finally {
    await admin.end();
  }
  const mediaFixturesDir = await mkdtemp(path.join(tmpdir(), "videograph-media-"));
  return {
    adminUrl,
    template,
    mediaFixturesDir,
    async teardown() {
      await dropRunDatabases(adminUrl, runDatabasePrefix());
      // The servers files shared (the Pub/Sub emulator, moto) before their records go.
      await stopSharedServers(mediaFixturesDir);
      await rm(mediaFixturesDir, { recursive: true, force: true });
      await embedded?.stop();
      if (embeddedDir) await rm(embeddedDir, { recursive: true, force: true });
    },
  };
}
