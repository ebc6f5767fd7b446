import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import pg from "pg";

const MIGRATIONS_DIR = path.resolve(import.meta.dirname, "../../prisma/migrations");
// Any constant works; it only has to be the same for every instance that migrates this database.
const MIGRATION_LOCK_KEY = 727_130_951;

/**
 * Applies the committed `prisma/migrations/<name>/migration.sql` files that the database has not
 * seen, in order, each in its own transaction, and records them in Prisma's own
 * `_prisma_migrations` table (checksum = sha256 hex of the file), so `prisma migrate deploy`
 * and `prisma migrate status` agree with it. Runs offline: Prisma 7's migrate needs a native
 * engine that cannot be downloaded on every machine (see docs/storage-and-deployment.md, "Migrations").
 */
export async function applyMigrations(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const names = await migrationNames(dir);
  const client = new pg.Client({ connectionString: databaseUrl });
  // A connection lost mid-migration fails the query in flight; the event itself must not crash the process.
  client.on("error", () => {});
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`);
    const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null }>(
      `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
    );
    const done = new Map(rows.map((r) => [r.migration_name, r]));
    for (const name of names) {
      const sql = await readFile(path.join(dir, name, "migration.sql"), "utf8");
      const checksum = createHash("sha256").update(sql).digest("hex");
      const row = done.get(name);
      if (row?.finished_at) {
        if (row.checksum !== checksum) {
          throw new Error(
            `Migration ${name} was edited after it was applied (checksum differs); add a new migration instead.`,
          );
        }
        continue;
      }
      if (row)
        throw new Error(
          `Migration ${name} started earlier but did not finish; resolve it with \`prisma migrate resolve\`.`,
        );
      await client.query("BEGIN");
      try {
        await client.query(sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count)
           VALUES ($1, $2, now(), $3, 1)`,
          [randomUUID(), checksum, name],
        );
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK");
        throw new Error(`Migration ${name} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(name);
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => {});
    await client.end();
  }
  return applied;
}

async function migrationNames(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

let shipped: Promise<string[]> | undefined;
/** The migrations this build ships, in order (read once). */
export function shippedMigrations(): Promise<string[]> {
  shipped ??= migrationNames(MIGRATIONS_DIR);
  return shipped;
}
