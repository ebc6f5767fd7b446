import { type Db, lockTenant } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { validPlainText } from "../plain-text.ts";
import { createApiKey, type CreatedApiKey, revokeKey } from "./api-keys.ts";
import type { Principal, Scope } from "./scopes.ts";

/** A key's name: what an admin calls it in lists. */
export const MAX_KEY_NAME_LENGTH = 100;
/** The longest life a key made through the API may have (ten years). */
export const MAX_EXPIRES_IN_DAYS = 3650;
/** The longest an old key keeps working after a rotation (a week). */
export const MAX_GRACE_SECONDS = 7 * 24 * 3600;

/** What a tenant's key management needs: the rows, and API_KEYS_MAX_PER_TENANT. */
export interface KeyManagementDeps {
  db: Db;
  apiKeys: { maxActivePerTenant: number };
}

/** The caller, whose own scopes and expiry bound every key it makes, rotates or revokes. */
type Caller = Pick<Principal, "tenantId" | "scopes" | "expiresAt" | "replaced">;

export type ApiKeyState = "ACTIVE" | "EXPIRED" | "REVOKED";

export function apiKeyState(key: ApiKey, now = Date.now()): ApiKeyState {
  if (key.revokedAt) return "REVOKED";
  if (key.expiresAt && key.expiresAt.getTime() <= now) return "EXPIRED";
  return "ACTIVE";
}

/** A key's name, trimmed: 1 to MAX_KEY_NAME_LENGTH characters, none of them a control character. */
function validKeyName(raw: string): string {
  const name = raw.trim();
  if (!name || name.length > MAX_KEY_NAME_LENGTH) {
    throw new ValidationError("name", `A key's name has 1 to ${MAX_KEY_NAME_LENGTH} characters`);
  }
  return validPlainText("name", name, false, true);
}

/** An optional whole-number argument `field` within [min, max]; null when not given. */
function within(value: number | null | undefined, field: string, min: number, max: number) {
  if (value === null || value === undefined) return null;
  if (value < min || value > max) throw new ValidationError(field, `${field} is ${min} to ${max}`);
  return value;
}

/** The scopes of `wanted` the caller lacks: a key can hand out, rotate or revoke only what it holds itself. */
function scopesBeyondCaller(caller: Caller, wanted: readonly string[]): string[] {
  return wanted.filter((scope) => !caller.scopes.has(scope as Scope));
}

/**
 * Refuses a caller that rotateApiKey replaced (in its grace): it manages no key, so rotating a
 * leaked key ends what the leak can do to keys at once.
 */
function refuseReplacedCaller(caller: Caller, field: string): void {
  if (caller.replaced) {
    throw new ValidationError(field, "This key was rotated: in its grace it authenticates, but manages no key");
  }
}

/**
 * Refuses a key that would outlive the caller's credential (`expiresAt` null: it never expires): a
 * key cannot mint or rotate its way past its own expiry.
 */
function withinCallerExpiry(caller: Caller, expiresAt: Date | null, field: string): void {
  const callerExpiry = caller.expiresAt;
  if (callerExpiry === null || (expiresAt !== null && expiresAt.getTime() <= callerExpiry)) return;
  throw new ValidationError(
    field,
    `A key makes only keys that expire no later than itself (${new Date(callerExpiry).toISOString()})`,
  );
}

/** One of the caller's tenant's keys, that the caller may manage; else NotFoundError or ValidationError. */
async function manageableKey(db: Db, caller: Caller, id: string, verb: string): Promise<ApiKey> {
  refuseReplacedCaller(caller, "id");
  const key = isUuid(id) ? await db.apiKey.findFirst({ where: { id, tenantId: caller.tenantId } }) : null;
  if (!key) throw new NotFoundError("API key", id);
  const beyond = scopesBeyondCaller(caller, key.scopes);
  if (beyond.length) {
    throw new ValidationError("id", `Cannot ${verb} a key with scopes your key lacks: ${beyond.join(", ")}`);
  }
  return key;
}

/** Locks the tenant and counts its keys that still authenticate, so two creations cannot both pass the limit. */
async function activeKeysOfLockedTenant(tx: Db, tenantId: string): Promise<number> {
  await lockTenant(tx, tenantId);
  return tx.apiKey.count({
    where: { tenantId, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] },
  });
}

function tooMany(max: number): ValidationError {
  return new ValidationError("input", `A tenant holds at most ${max} active API keys; revoke one first`);
}

/**
 * Makes a key for the caller's tenant with some of the caller's own scopes, expiring no later
 * than the caller; refused past the tenant's limit of active keys.
 */
export async function createTenantApiKey(
  deps: KeyManagementDeps,
  caller: Caller,
  input: { name: string; scopes: readonly Scope[]; expiresInDays?: number | null },
): Promise<CreatedApiKey> {
  refuseReplacedCaller(caller, "input");
  const name = validKeyName(input.name);
  const scopes = [...new Set(input.scopes)];
  if (!scopes.length) throw new ValidationError("scopes", "A key needs at least one scope");
  const beyond = scopesBeyondCaller(caller, scopes);
  if (beyond.length) {
    throw new ValidationError("scopes", `A key can hand out only scopes it holds; yours lacks ${beyond.join(", ")}`);
  }
  const days = within(input.expiresInDays, "expiresInDays", 1, MAX_EXPIRES_IN_DAYS);
  const expiresAt = days === null ? null : new Date(Date.now() + days * 86_400_000);
  withinCallerExpiry(caller, expiresAt, "expiresInDays");
  const { tenantId } = caller;
  const max = deps.apiKeys.maxActivePerTenant;
  const created = await deps.db.$transaction(async (tx) => {
    if ((await activeKeysOfLockedTenant(tx as unknown as Db, tenantId)) >= max) return null;
    return createApiKey(tx as unknown as Db, { tenantId, name, scopes, expiresAt });
  });
  if (!created) throw tooMany(max);
  return created;
}

/**
 * Replaces an active key with a new one of the same name, scopes and expiry: the old one is revoked
 * now (`graceSeconds` 0 or absent) or expires after its grace, counting against the tenant's limit
 * until then.
 */
export async function rotateTenantApiKey(
  deps: KeyManagementDeps,
  caller: Caller,
  input: { id: string; graceSeconds?: number | null },
): Promise<CreatedApiKey & { previous: ApiKey }> {
  const grace = within(input.graceSeconds, "graceSeconds", 0, MAX_GRACE_SECONDS) ?? 0;
  const old = await manageableKey(deps.db, caller, input.id, "rotate");
  const state = apiKeyState(old);
  if (state !== "ACTIVE") throw new ValidationError("id", `The key is ${state.toLowerCase()}`);
  // The new key keeps the old one's expiry: it may not outlive the caller either.
  withinCallerExpiry(caller, old.expiresAt, "id");
  const { tenantId } = caller;
  const max = deps.apiKeys.maxActivePerTenant;
  const rotated = await deps.db.$transaction(async (tx) => {
    const db = tx as unknown as Db;
    // With a grace period both keys count until the old one expires.
    if (grace > 0 && (await activeKeysOfLockedTenant(db, tenantId)) >= max) return null;
    const graceEnd = new Date(Date.now() + grace * 1000);
    const previous =
      grace === 0
        ? await revokeKey(db, old)
        : await db.apiKey.update({
            where: { id: old.id },
            data: {
              expiresAt: old.expiresAt && old.expiresAt < graceEnd ? old.expiresAt : graceEnd,
              rotatedAt: new Date(),
            },
          });
    const created = await createApiKey(db, {
      tenantId,
      name: old.name,
      scopes: old.scopes as Scope[],
      expiresAt: old.expiresAt,
    });
    return { ...created, previous };
  });
  if (!rotated) throw tooMany(max);
  return rotated;
}

/** Revokes one of the caller's tenant's keys that the caller may manage. */
export async function revokeTenantApiKey(db: Db, caller: Caller, id: string): Promise<ApiKey> {
  return revokeKey(db, await manageableKey(db, caller, id, "revoke"));
}
