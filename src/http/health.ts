import type { ServerResponse } from "node:http";
import type { Db } from "../db/client.ts";

export const HEALTH_PATH = "/health";

/** `GET /health`: 200 while the database answers, 503 when it does not. */
export async function handleHealth(db: Db, res: ServerResponse): Promise<void> {
  const ok = await db.$queryRaw`SELECT 1`.then(
    () => true,
    () => false,
  );
  res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
  res.end(JSON.stringify({ status: ok ? "ok" : "database unavailable" }));
}
