// Exits 2 (and prints the missing SQL) when prisma/schema.prisma and the committed migrations
// disagree; 0 when they match. Used by `npm test` (test/migrations.test.ts) and CI.
import { diffArgs, prismaMigrate } from "./prisma-migrate.ts";
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run migrate:check
Exits 0 when the committed migrations create prisma/schema.prisma, 2 (printing the missing SQL)
when they do not. Uses DATABASE_URL for a throw-away shadow database (default: local Postgres).`,
  {},
);

try {
  prismaMigrate([...diffArgs, "--exit-code"], { capture: true });
  console.log("Migrations match prisma/schema.prisma.");
} catch (err) {
  const e = err as { status?: number; stdout?: string };
  if (e.status === 2) {
    console.error("prisma/schema.prisma has changes no migration creates. Run `npm run migrate:create -- <name>`.\n");
    console.error(prismaMigrate([...diffArgs, "--script"], { capture: true }));
  }
  process.exit(e.status ?? 1);
}
