// Runs Prisma 6's CLI (installed as `prisma-migrate`, WASM schema engine through adapter-pg) with
// prisma.migrate.config.ts: the only way to diff migrations against the schema on machines that
// cannot download Prisma 7's native schema engine. See docs/storage-and-deployment.md, "Migrations".
import { execFileSync } from "node:child_process";

export const DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres";

export function prismaMigrate(args: string[], options: { capture?: boolean } = {}): string {
  const cli = "node_modules/prisma-migrate/build/index.js";
  return execFileSync(process.execPath, [cli, ...args, "--config", "prisma.migrate.config.ts"], {
    encoding: "utf8",
    stdio: ["ignore", options.capture ? "pipe" : "inherit", "inherit"],
    env: { ...process.env, DATABASE_URL: process.env.DATABASE_URL ?? DEV_DATABASE_URL },
  });
}

export const diffArgs = [
  "migrate",
  "diff",
  "--from-migrations",
  "prisma/migrations",
  "--to-schema-datamodel",
  "node_modules/.prisma-migrate/schema.prisma",
];
