import type pg from "pg";

/** The fan-out topic of a change: `{ tenantId }`, or no tenant (anything may have changed). */
export const COLLECTION_TOPIC = "analyticsCollection";
/** How long this process trusts what it read of a tenant's switch; a change on any instance clears it at once. */
const TRUST_MS = 10_000;

/**
 * Whether a tenant collects viewer analytics (`Tenant.analyticsEnabled`), as the endpoint asks on
 * every batch: remembered per tenant, forgotten on every API instance when it changes (the event
 * fan-out) or after TRUST_MS.
 */
export function createCollectionSwitch(pool: pg.Pool, target: EventTarget) {
  const known = new Map<string, { enabled: boolean; at: number }>();
  target.addEventListener(COLLECTION_TOPIC, (event) => {
    const tenantId = ((event as CustomEvent).detail as { tenantId?: string } | undefined)?.tenantId;
    // A resync (the fan-out reconnected) names no tenant: anything may have changed.
    if (tenantId) known.delete(tenantId);
    else known.clear();
  });
  const remember = (tenantId: string, enabled: boolean) => {
    if (known.size > 100_000) known.clear();
    known.set(tenantId, { enabled, at: Date.now() });
  };

  return {
    remember,
    async isEnabled(tenantId: string): Promise<boolean> {
      const entry = known.get(tenantId);
      if (entry && Date.now() - entry.at < TRUST_MS) return entry.enabled;
      const { rows } = await pool.query<{ analyticsEnabled: boolean }>(
        `SELECT "analyticsEnabled" FROM "Tenant" WHERE id = $1`,
        [tenantId],
      );
      const enabled = rows[0]?.analyticsEnabled ?? false;
      remember(tenantId, enabled);
      return enabled;
    },
    /** Turns the tenant's collection on or off, here at once and on every instance through the fan-out. */
    async set(tenantId: string, enabled: boolean): Promise<void> {
      await pool.query(`UPDATE "Tenant" SET "analyticsEnabled" = $2 WHERE id = $1`, [tenantId, enabled]);
      remember(tenantId, enabled);
      target.dispatchEvent(new CustomEvent(COLLECTION_TOPIC, { detail: { tenantId } }));
    },
  };
}

export type CollectionSwitch = ReturnType<typeof createCollectionSwitch>;
