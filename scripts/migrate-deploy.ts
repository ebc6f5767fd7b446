// Applies committed migrations to DATABASE_URL (the API also does this at start).
import { applyMigrations } from "../src/db/migrate.ts";
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run migrate:deploy
Applies the committed migrations to DATABASE_URL (the API also does this when it starts).`,
  {},
);
const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is required");
  process.exit(2);
}
const applied = await applyMigrations(url);
console.log(applied.length ? `Applied: ${applied.join(", ")}` : "Database is up to date.");
