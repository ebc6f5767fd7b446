import { createHash, randomBytes } from "node:crypto";
import type { Db } from "../db/client.ts";
import { EVENTS_CHANNEL, notificationPayload } from "../events/postgres-event-target.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { parseScopes, type Scope } from "./scopes.ts";

const API_KEY_PREFIX = "vg_";
/** The tenant every embedded install starts with (created by the `security` migration). */
const DEFAULT_TENANT_NAME = "default";
export const DEFAULT_TENANT_ID = "00000000-0000-4000-8000-000000000001";

export function hashApiKey(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

/** The tenant called `name`, created if missing. */
export async function ensureTenant(db: Db, name: string): Promise<{ id: string; name: string }> {
  return db.tenant.upsert({ where: { name }, create: { name }, update: {} });
}

export interface CreatedApiKey {
  key: ApiKey;
  /** The secret itself: shown once, never stored. */
  secret: string;
}

/**
 * Makes a key for `tenantId`. Keys are 32 random bytes, so an unsalted SHA-256 is enough to
 * keep a leaked table useless (there is nothing to guess); `secret` lets an operator pin one.
 */
export async function createApiKey(
  db: Db,
  options: { tenantId: string; name: string; scopes: readonly Scope[]; expiresAt?: Date | null; secret?: string },
): Promise<CreatedApiKey> {
  const secret = options.secret ?? `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  if (!looksLikeApiKey(secret) || secret.length < 24)
    throw new Error(`An API key starts with ${API_KEY_PREFIX} and has at least 24 characters`);
  const key = await db.apiKey.create({
    data: {
      tenantId: options.tenantId,
      name: options.name,
      prefix: secret.slice(0, 10),
      hash: hashApiKey(secret),
      scopes: parseScopes(options.scopes),
      expiresAt: options.expiresAt ?? null,
    },
  });
  return { key, secret };
}

/** The fan-out topic that tells every API instance a key was revoked: `{ keyId }`. */
export const API_KEY_REVOKED_TOPIC = "apiKeyRevoked";

/**
 * Revokes a key by id or by its secret's prefix; returns the revoked key, or null. Every API
 * instance is told, so that live subscriptions of the key end at once.
 */
export async function revokeApiKey(db: Db, idOrPrefix: string): Promise<ApiKey | null> {
  const key = await db.apiKey.findFirst({
    where: /^[0-9a-f-]{36}$/i.test(idOrPrefix) ? { id: idOrPrefix } : { prefix: idOrPrefix },
  });
  return key ? revokeKey(db, key) : null;
}

/**
 * Revokes `key` (kept as it is if it already was) and tells every API instance. Inside a
 * transaction the NOTIFY goes out when it commits.
 */
export async function revokeKey(db: Db, key: ApiKey): Promise<ApiKey> {
  const revoked = await db.apiKey.update({ where: { id: key.id }, data: { revokedAt: key.revokedAt ?? new Date() } });
  const payload = notificationPayload(API_KEY_REVOKED_TOPIC, { keyId: key.id });
  await db.$executeRaw`SELECT pg_notify(${EVENTS_CHANNEL}, ${payload})`;
  return revoked;
}

/**
 * Makes sure an admin key exists: with `pinnedSecret` (BOOTSTRAP_API_KEY) that key, else (when
 * `createIfNone`) a new one when the database has no key at all. Returns a secret only when it
 * was just created.
 */
export async function bootstrapAdminKey(
  db: Db,
  pinnedSecret: string | undefined,
  scopes: readonly Scope[],
  options: { createIfNone: boolean },
): Promise<CreatedApiKey | null> {
  const tenant = await ensureTenant(db, DEFAULT_TENANT_NAME);
  if (pinnedSecret) {
    const existing = await db.apiKey.findUnique({ where: { hash: hashApiKey(pinnedSecret) } });
    if (existing) return null;
    return createApiKey(db, {
      tenantId: tenant.id,
      name: "bootstrap (BOOTSTRAP_API_KEY)",
      scopes,
      secret: pinnedSecret,
    }).catch(async (err) => {
      // Another instance created it at the same moment.
      if (await db.apiKey.findUnique({ where: { hash: hashApiKey(pinnedSecret) } })) return null;
      throw err;
    });
  }
  if (!options.createIfNone) return null;
  // Serialised so that two instances starting together do not both create (and print) one.
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(4243)`;
    if ((await tx.apiKey.count()) > 0) return null;
    return createApiKey(tx as unknown as Db, { tenantId: tenant.id, name: "admin (created on first start)", scopes });
  });
}
