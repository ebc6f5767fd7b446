import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.ts";
import { log } from "../log.ts";

export type Db = PrismaClient;
/** A transaction of the API's database client (`db.$transaction(async (tx) => …)`). */
export type DbTransaction = Parameters<Parameters<Db["$transaction"]>[0]>[0];

export function createDb(databaseUrl: string, options: { max?: number } = {}): Db {
  // The adapter's pool drops a connection the server ends (a restart, a failover) and opens
  // another for the next query; these only say so. Without a connect timeout, requests would
  // hang for minutes on an address that no longer answers (pg-boss uses the same 10 s).
  const adapter = new PrismaPg(
    { connectionString: databaseUrl, max: options.max ?? 10, connectionTimeoutMillis: 10_000 },
    {
      onPoolError: (err) => log.warn("database connection lost (idle)", { err: err.message }),
      onConnectionError: (err) => log.warn("database connection lost (in a transaction)", { err: err.message }),
    },
  );
  return new PrismaClient({ adapter });
}

/**
 * Locks the tenant's row until the transaction ends, so that two requests of one tenant checking a
 * per-tenant limit (webhook endpoints, API keys) cannot both pass the count.
 */
export async function lockTenant(tx: Pick<Db, "$queryRaw">, tenantId: string): Promise<void> {
  await tx.$queryRaw`SELECT 1 FROM "Tenant" WHERE id = ${tenantId}::uuid FOR UPDATE`;
}
