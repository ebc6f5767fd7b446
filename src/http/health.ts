import type { ServerResponse } from "node:http";
import type { Db } from "../db/client.ts";
import { shippedMigrations } from "../db/migrate.ts";
import { log } from "../log.ts";
import { runCheck } from "../shared/health-check.ts";
import type { ApiTransport } from "../transport/types.ts";

/** `/health`: the database answers (kept as it was for scripts and older probes). */
const HEALTH_PATH = "/health";
/** `/livez`: the process is up and serving HTTP. */
const LIVENESS_PATH = "/livez";
/** `/readyz`: migrations applied, database and transport reachable. */
const READINESS_PATH = "/readyz";
export const HEALTH_PATHS = [HEALTH_PATH, LIVENESS_PATH, READINESS_PATH];

interface HealthDeps {
  db: Db;
  transport: ApiTransport;
}

/** Answers `/health`, `/livez` or `/readyz`; false for any other path. */
export async function serveHealthPath(pathname: string, deps: HealthDeps, res: ServerResponse): Promise<boolean> {
  if (pathname === HEALTH_PATH) await handleHealth(deps.db, res);
  else if (pathname === LIVENESS_PATH) handleLiveness(res);
  else if (pathname === READINESS_PATH) await handleReadiness(deps, res);
  else return false;
  return true;
}

function reply(res: ServerResponse, ok: boolean, body: Record<string, unknown>): void {
  res.writeHead(ok ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

/** `GET /health`: 200 while the database answers, 503 when it does not. */
async function handleHealth(db: Db, res: ServerResponse): Promise<void> {
  const ok = (await runCheck(() => db.$queryRaw`SELECT 1`)) === null;
  reply(res, ok, { status: ok ? "ok" : "database unavailable" });
}

/** `GET /livez`: 200 as long as the process serves HTTP; it checks nothing else, so a restart cannot fix it. */
function handleLiveness(res: ServerResponse): void {
  reply(res, true, { status: "ok" });
}

/**
 * `GET /readyz`: 200 when the database answers, every migration this build ships is applied and
 * the transport answers; else 503 with the failing checks. Reasons name the failing part only:
 * no connection strings, no hosts.
 */
async function handleReadiness(deps: HealthDeps, res: ServerResponse): Promise<void> {
  const [database, migrations, transport] = await Promise.all([
    runCheck(() => deps.db.$queryRaw`SELECT 1`),
    runCheck(() => missingMigrations(deps.db)),
    runCheck(() => deps.transport.checkReachable()),
  ]);
  // Open to anyone who reaches the port: what failed, never why (hosts, connection errors).
  const checks = {
    database: database === null ? "ok" : "unavailable",
    migrations: migrations === null ? "ok" : database === null ? migrations : "unknown",
    transport: transport === null ? "ok" : "unavailable",
  };
  const ok = database === null && migrations === null && transport === null;
  logReadinessChange(ok ? null : JSON.stringify({ database, migrations, transport }));
  reply(res, ok, { status: ok ? "ready" : "not ready", checks });
}

let lastFailure: string | null = null;
/** The reasons go to the log, once per change: probes come every few seconds. */
function logReadinessChange(failure: string | null): void {
  if (failure === lastFailure) return;
  if (failure === null) log.info("ready again");
  else log.warn("not ready", { reasons: JSON.parse(failure) });
  lastFailure = failure;
}

/** Null when every migration this build ships is recorded as finished, else which are not. */
async function missingMigrations(db: Db): Promise<string | null> {
  const rows = await db.$queryRaw<{ migration_name: string }[]>`
    SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`.catch(
    () => [],
  );
  const applied = new Set(rows.map((r) => r.migration_name));
  const missing = (await shippedMigrations()).filter((name) => !applied.has(name));
  return missing.length ? `missing: ${missing.join(", ")}` : null;
}
