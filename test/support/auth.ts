import { createApiKey, ensureTenant } from "../../src/auth/api-keys.ts";
import type { Scope } from "../../src/auth/scopes.ts";
import type { Db } from "../../src/db/client.ts";
/** The admin key every test service is started with (BOOTSTRAP_API_KEY): tenant "default", every scope. */
export const TEST_ADMIN_KEY = "vg_test_admin_key_not_a_secret_0123456789";
export const ADMIN_AUTH = { authorization: `Bearer ${TEST_ADMIN_KEY}` } as const;

/** The secret of a new API key of tenant `tenant` (created if need be) with `scopes`. */
export async function tenantKeySecret(
  db: Db,
  tenant: string,
  scopes: readonly Scope[],
  keyName = tenant,
): Promise<string> {
  const { id } = await ensureTenant(db, tenant);
  return (await createApiKey(db, { tenantId: id, name: keyName, scopes })).secret;
}
