import type pg from "pg";

/** The fan-out topic of a change: `{ tenantId }`, or no tenant (anything may have changed). */
export const COLLECTION_TOPIC = "analyticsCollection";
/** How long this process trusts what it read of a tenant's switch; a change on any instance clears it at once. */
const TRUST_MS = 10_000;

/**
 * Whether a tenant collects viewer analytics (`Tenant.analyticsEnabled`), as the endpoint asks on
 * every batch: remembered per tenant, forgotten on every API instance when it changes (the event
 * fan-out) or after TRUST_MS. One read per tenant at a time: when what was remembered runs out, the
 * batches that arrive meanwhile (thousands a second) wait for that read instead of each making one.
 */
export function createCollectionSwitch(pool: pg.Pool, target: EventTarget) {
  const known = new Map<string, { enabled: boolean; at: number }>();
  const reading = new Map<string, Promise<boolean>>();
  // Bumped by every change heard: a read that began before one must not be remembered after it.
  let changes = 0;
  target.addEventListener(COLLECTION_TOPIC, (event) => {
    const tenantId = ((event as CustomEvent).detail as { tenantId?: string } | undefined)?.tenantId;
    changes++;
    // A resync (the fan-out reconnected) names no tenant: anything may have changed.
    if (tenantId) {
      known.delete(tenantId);
      reading.delete(tenantId);
    } else {
      known.clear();
      reading.clear();
    }
  });
  const remember = (tenantId: string, enabled: boolean) => {
    if (known.size > 100_000) known.clear();
    known.set(tenantId, { enabled, at: Date.now() });
  };

  function read(tenantId: string): Promise<boolean> {
    const changesBefore = changes;
    const reads = pool
      .query<{ analyticsEnabled: boolean }>(`SELECT "analyticsEnabled" FROM "Tenant" WHERE id = $1`, [tenantId])
      .then(({ rows }) => {
        const enabled = rows[0]?.analyticsEnabled ?? false;
        if (changes === changesBefore) remember(tenantId, enabled);
        return enabled;
      })
      .finally(() => {
        if (reading.get(tenantId) === reads) reading.delete(tenantId);
      });
    reading.set(tenantId, reads);
    return reads;
  }

  return {
    remember,
    async isEnabled(tenantId: string): Promise<boolean> {
      const entry = known.get(tenantId);
      if (entry && Date.now() - entry.at < TRUST_MS) return entry.enabled;
      return reading.get(tenantId) ?? read(tenantId);
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
