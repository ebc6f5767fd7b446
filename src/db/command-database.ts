import type { Env } from "../config.ts";
import { createDb, type Db } from "./client.ts";
import { runningEmbeddedPostgres, startEmbeddedPostgres } from "./embedded.ts";
import { applyMigrations } from "./migrate.ts";

/**
 * The database an operator's command works on: DATABASE_URL; without it, the embedded Postgres
 * under DATA_DIR (the one a running `npm start` serves, or a start of it for the command), with the
 * migrations applied. `close` disconnects, and stops an embedded Postgres the command started.
 */
export async function openCommandDatabase(env: Env): Promise<{ db: Db; close(): Promise<void> }> {
  let stopEmbedded: (() => Promise<void>) | null = null;
  let url = env.DATABASE_URL ?? (await runningEmbeddedPostgres(env.DATA_DIR));
  if (!url) {
    const embedded = await startEmbeddedPostgres(env.DATA_DIR);
    url = embedded.url;
    stopEmbedded = embedded.stop;
  }
  await applyMigrations(url);
  const db = createDb(url, { max: 2 });
  return {
    db,
    async close() {
      await db.$disconnect();
      await stopEmbedded?.();
    },
  };
}
