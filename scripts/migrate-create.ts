// Writes prisma/migrations/<UTC timestamp>_<name>/migration.sql from the diff between the
// committed migrations (replayed into a throw-away shadow database) and prisma/schema.prisma.
// Stands in for `prisma migrate dev --create-only`, which needs Prisma's native engine.
import { mkdirSync, writeFileSync } from "node:fs";
import { diffArgs, prismaMigrate } from "./prisma-migrate.ts";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const usage = `usage: npm run migrate:create -- <name>
Writes prisma/migrations/<UTC timestamp>_<name>/migration.sql: the SQL that takes the committed
migrations to prisma/schema.prisma. Uses DATABASE_URL for a throw-away shadow database.`;
const { positionals } = parseCommandLine(usage, { allowPositionals: true });
const name = (positionals[0] ?? "")
  .trim()
  .replace(/[^A-Za-z0-9_]+/g, "_")
  .replace(/^_+|_+$/g, "");
if (positionals.length !== 1 || !name) usageError(usage, "one migration name is required, e.g. add_webhook_cap");
const sql = prismaMigrate([...diffArgs, "--script"], { capture: true });
if (/^-- This is an empty migration\.\s*$/.test(sql.trim())) {
  console.log("No schema changes.");
  process.exit(0);
}
const ts = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
const dir = `prisma/migrations/${ts}_${name}`;
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}/migration.sql`, sql);
console.log(`Created ${dir}/migration.sql`);
