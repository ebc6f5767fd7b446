import type { Db, DbTransaction as Tx } from "../db/client.ts";

/**
 * The key of the transaction-level advisory lock under which broadcasts are admitted: two API
 * instances starting broadcasts at once count the fleet's live slots one after the other.
 */
const LIVE_ADMISSION_LOCK = 7_406_153_921;

/** Free slots kept for a tenant with nothing on air, while one exists: a tenant on air may not take them. */
const SLOTS_KEPT_FOR_TENANTS_OFF_AIR = 1;

/** The fleet's live slots as one admission sees them. */
export interface LiveSlots {
  /** Slots of the workers serving `live` that heartbeated within the alive window. */
  capacity: number;
  /** Broadcasts holding a slot: LIVE jobs QUEUED or RUNNING. */
  held: number;
  /** Of them, the asking tenant's. */
  heldByTenant: number;
  /** Another tenant has a live stream that may publish and no broadcast holding a slot. */
  otherTenantOffAir: boolean;
}

/**
 * Takes the live admission lock for the rest of `tx`. Taken after the tenant's row lock, never
 * before it, so admissions of two tenants cannot wait on each other.
 */
export async function lockLiveAdmission(tx: Tx): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LIVE_ADMISSION_LOCK}::bigint)`;
}

/** The fleet's live slots: what alive workers serving `live` say they take, and the broadcasts holding them. */
export async function countLiveSlots(
  client: Tx | Db,
  tenantId: string,
  aliveWithinSeconds: number,
): Promise<LiveSlots> {
  const aliveSince = new Date(Date.now() - aliveWithinSeconds * 1000);
  // A worker that does not report live slots (older) took `slots` broadcasts on its live queue.
  const [row] = await client.$queryRaw<
    { capacity: bigint; held: bigint; heldByTenant: bigint; otherTenantOffAir: boolean }[]
  >`
    WITH holding AS (
      SELECT v."tenantId" FROM "Job" j JOIN "Video" v ON v.id = j."videoId"
      WHERE j.kind = 'LIVE' AND j.status IN ('QUEUED', 'RUNNING')
    )
    SELECT
      (SELECT COALESCE(SUM(COALESCE(w."liveSlots", w.slots)), 0) FROM "Worker" w
        WHERE 'live' = ANY (w.capabilities) AND w."lastHeartbeatAt" >= ${aliveSince}) AS capacity,
      (SELECT count(*) FROM holding) AS held,
      (SELECT count(*) FROM holding WHERE "tenantId" = ${tenantId}::uuid) AS "heldByTenant",
      EXISTS (
        SELECT 1 FROM "LiveStream" s
        WHERE s."tenantId" <> ${tenantId}::uuid AND s."disabledAt" IS NULL
          AND s."tenantId" NOT IN (SELECT "tenantId" FROM holding)
      ) AS "otherTenantOffAir"`;
  return {
    capacity: Number(row!.capacity),
    held: Number(row!.held),
    heldByTenant: Number(row!.heldByTenant),
    otherTenantOffAir: row!.otherTenantOffAir,
  };
}

/**
 * Why a tenant's new broadcast gets no live slot, or null (docs/live.md "Capacity"): no worker
 * serving `live` is alive; every slot is held; or the tenant has a broadcast on air and the free
 * slots left are those kept for a tenant with none, while such a tenant exists.
 */
export function whyNoLiveSlot(slots: LiveSlots): string | null {
  if (slots.capacity === 0) return "no live capacity: no worker serving live broadcasts is alive";
  const free = slots.capacity - slots.held;
  if (free <= 0) return `no live capacity: every live slot is taken (${slots.held} of ${slots.capacity})`;
  if (slots.heldByTenant > 0 && free <= SLOTS_KEPT_FOR_TENANTS_OFF_AIR && slots.otherTenantOffAir)
    return (
      `no live capacity for another broadcast of this tenant: the last free live slot of ${slots.capacity} is kept ` +
      "for a tenant with none on air"
    );
  return null;
}
