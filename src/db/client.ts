import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.ts";
import { log } from "../log.ts";

export type Db = PrismaClient;

export function createDb(databaseUrl: string, options: { max?: number } = {}): Db {
  // The adapter's pool drops a connection the server ends (a restart, a failover) and opens
  // another for the next query; these only say so.
  const adapter = new PrismaPg(
    { connectionString: databaseUrl, max: options.max ?? 10 },
    {
      onPoolError: (err) => log.warn("database connection lost (idle)", { err: err.message }),
      onConnectionError: (err) => log.warn("database connection lost (in a transaction)", { err: err.message }),
    },
  );
  return new PrismaClient({ adapter });
}
