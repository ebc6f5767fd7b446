/** Node's codes for a connection that could not be made or was lost. */
const CONNECTION_LOSS_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN"]);
/**
 * Prisma's codes for a database it cannot reach or that stopped answering: P1001 not reachable,
 * P1002 timed out, P1008 operation timed out, P1017 server closed the connection, P2024 no
 * connection from the pool in time.
 */
const PRISMA_UNAVAILABLE_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);
/** Prisma's driver adapter's kinds of the same. */
const ADAPTER_UNAVAILABLE_KINDS = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections",
]);
const CONNECTION_LOSS_MESSAGE = /Connection terminated|connection timeout|Client has encountered a connection error/i;

/**
 * SQLSTATE classes that say the database cannot serve now, not that the request was wrong: 08
 * connection exception, 57P operator intervention (a shutdown, a restart), 28 a login refused for
 * now (a role locked while a failover or a credential rotation completes), 53 insufficient
 * resources (disk full: `could not extend file`, out of memory, too many connections), 58 system
 * error (an I/O error).
 */
const UNAVAILABLE_SQLSTATE = /^(08|57P|28|53|58)/;

/** The codes `err` carries: Node's or Postgres's `code`, and Prisma's driver adapter's cause. */
function codesOf(err: object): string[] {
  const e = err as {
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: { code?: unknown; originalCode?: unknown; kind?: unknown } } };
  };
  const cause = e.meta?.driverAdapterError?.cause;
  return [e.code, cause?.code, cause?.originalCode, cause?.kind].filter((c): c is string => typeof c === "string");
}

/**
 * Whether `err` (from pg, pg-boss or Prisma, or caused by one) says the database is unreachable,
 * restarting, refusing logins for now or out of resources (a full disk): a failure of the database,
 * not of the request, which a caller answers with 503 or waits out, never blames on its job.
 */
export function databaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === "object" && e !== null && depth < 5; depth++) {
    const codes = codesOf(e);
    if (
      codes.some(
        (c) =>
          UNAVAILABLE_SQLSTATE.test(c) ||
          CONNECTION_LOSS_CODES.has(c) ||
          PRISMA_UNAVAILABLE_CODES.has(c) ||
          ADAPTER_UNAVAILABLE_KINDS.has(c),
      )
    )
      return true;
    const { message } = e as { message?: unknown };
    if (typeof message === "string" && CONNECTION_LOSS_MESSAGE.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
