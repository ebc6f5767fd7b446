import { createApiKey, revokeKey } from "../auth/api-keys.ts";
import { SCOPES, type Scope } from "../auth/scopes.ts";
import { builder } from "../builder.ts";
import { tenantOf, type Context } from "../context.ts";
import { type Db, lockTenant } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { validPlainText } from "../plain-text.ts";
import { refuseMalformedIdCursors } from "./id-cursors.ts";

/** A key's name: what an admin calls it in lists. */
const MAX_NAME_LENGTH = 100;
/** The longest life a key made through the API may have (ten years). */
const MAX_EXPIRES_IN_DAYS = 3650;
/** The longest an old key keeps working after a rotation (a week). */
const MAX_GRACE_SECONDS = 7 * 24 * 3600;

const scopeName = (scope: Scope) => scope.replace(":", "_").toUpperCase();

const ApiKeyScopeEnum = builder.enumType("ApiKeyScope", {
  values: Object.fromEntries(SCOPES.map((s) => [scopeName(s), { value: s, description: `\`${s}\`` }])) as Record<
    string,
    { value: Scope }
  >,
});

const ApiKeyStateEnum = builder.enumType("ApiKeyState", {
  values: {
    ACTIVE: { description: "Authenticates requests." },
    EXPIRED: { description: "Its `expiresAt` passed." },
    REVOKED: { description: "Revoked (`revokeApiKey`, a rotation, or `npm run apikey:revoke`)." },
  } as const,
});

function stateOf(key: ApiKey, now = Date.now()): "ACTIVE" | "EXPIRED" | "REVOKED" {
  if (key.revokedAt) return "REVOKED";
  if (key.expiresAt && key.expiresAt.getTime() <= now) return "EXPIRED";
  return "ACTIVE";
}

const ApiKeyRef = builder.prismaObject("ApiKey", {
  description: "A credential of the tenant. Its secret is shown once, when it is made; only a hash is stored.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    prefix: t.exposeString("prefix", { description: "The secret's first 10 characters, to tell keys apart." }),
    scopes: t.field({ type: [ApiKeyScopeEnum], resolve: (k) => k.scopes as Scope[] }),
    state: t.field({ type: ApiKeyStateEnum, resolve: (k) => stateOf(k) }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    lastUsedAt: t.expose("lastUsedAt", {
      type: "DateTime",
      nullable: true,
      description: "When it last authenticated, to the minute (written at most once a minute).",
    }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", nullable: true }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
  }),
});

const CreateApiKeyInput = builder.inputType("CreateApiKeyInput", {
  fields: (t) => ({
    name: t.string({ required: true, description: `1 to ${MAX_NAME_LENGTH} characters, no control characters.` }),
    scopes: t.field({
      type: [ApiKeyScopeEnum],
      required: true,
      description: "At least one; each must be one of the caller's own scopes.",
    }),
    expiresInDays: t.int({ description: `1 to ${MAX_EXPIRES_IN_DAYS}; default: never expires.` }),
  }),
});

const RotateApiKeyInput = builder.inputType("RotateApiKeyInput", {
  fields: (t) => ({
    id: t.id({ required: true }),
    graceSeconds: t.int({
      description:
        `How long the old key keeps working, 0 to ${MAX_GRACE_SECONDS} (a week); default 0: revoked at once. ` +
        "Its live subscriptions end within AUTH_RECHECK_SECONDS after.",
    }),
  }),
});

const CreateApiKeySuccess = builder.objectRef<{ apiKey: ApiKey; secret: string }>("CreateApiKeySuccess").implement({
  fields: (t) => ({
    apiKey: t.field({ type: ApiKeyRef, resolve: (r) => r.apiKey }),
    secret: t.exposeString("secret", { description: "The key itself (`Bearer …`). Shown once: keep it." }),
  }),
});

const RotateApiKeySuccess = builder
  .objectRef<{ apiKey: ApiKey; secret: string; previous: ApiKey }>("RotateApiKeySuccess")
  .implement({
    description: "The new key (same name and scopes), its secret (shown once), and the old key as it is now.",
    fields: (t) => ({
      apiKey: t.field({ type: ApiKeyRef, resolve: (r) => r.apiKey }),
      secret: t.exposeString("secret", { description: "The new key itself (`Bearer …`). Shown once: keep it." }),
      previous: t.field({ type: ApiKeyRef, resolve: (r) => r.previous }),
    }),
  });

const RevokeApiKeySuccess = builder.objectRef<{ apiKey: ApiKey }>("RevokeApiKeySuccess").implement({
  fields: (t) => ({ apiKey: t.field({ type: ApiKeyRef, resolve: (r) => r.apiKey }) }),
});

/** A key's name, trimmed: 1 to MAX_NAME_LENGTH characters, none of them a control character. */
function validKeyName(raw: string): string {
  const name = raw.trim();
  if (!name || name.length > MAX_NAME_LENGTH) {
    throw new ValidationError("name", `A key's name has 1 to ${MAX_NAME_LENGTH} characters`);
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
function scopesBeyondCaller(ctx: Context, wanted: readonly string[]): string[] {
  return wanted.filter((scope) => !ctx.auth?.scopes.has(scope as Scope));
}

/**
 * Why the caller may not manage keys, or null: a key rotateApiKey replaced (in its grace) manages
 * none, so rotating a leaked key ends what the leak can do to keys at once.
 */
function replacedCaller(ctx: Context, field: string): ValidationError | null {
  return ctx.auth?.replaced
    ? new ValidationError(field, "This key was rotated: in its grace it authenticates, but manages no key")
    : null;
}

/**
 * Refuses a key that would outlive the caller's credential (`expiresAt` null: it never expires): a
 * key cannot mint or rotate its way past its own expiry.
 */
function withinCallerExpiry(ctx: Context, expiresAt: Date | null, field: string): void {
  const callerExpiry = ctx.auth?.expiresAt ?? null;
  if (callerExpiry === null || (expiresAt !== null && expiresAt.getTime() <= callerExpiry)) return;
  throw new ValidationError(
    field,
    `A key makes only keys that expire no later than itself (${new Date(callerExpiry).toISOString()})`,
  );
}

/** One of the caller's tenant's keys, that the caller may manage; else NotFoundError or ValidationError. */
async function manageableKey(ctx: Context, id: string, verb: string): Promise<ApiKey> {
  const replaced = replacedCaller(ctx, "id");
  if (replaced) throw replaced;
  const key = isUuid(id) ? await ctx.db.apiKey.findFirst({ where: { id, tenantId: tenantOf(ctx) } }) : null;
  if (!key) throw new NotFoundError("API key", id);
  const beyond = scopesBeyondCaller(ctx, key.scopes);
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

builder.queryFields((t) => ({
  apiKeys: t.prismaConnection({
    type: ApiKeyRef,
    cursor: "id",
    description: "The caller's tenant's API keys, newest first, revoked and expired ones too. Never their secrets.",
    authScopes: { scope: "keys:admin" },
    resolve: (query, _root, args, ctx) => {
      refuseMalformedIdCursors(args);
      return ctx.db.apiKey.findMany({
        ...query,
        where: { tenantId: tenantOf(ctx) },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreateApiKeySuccess,
    description:
      "Makes a key for the caller's tenant with some of the caller's own scopes; the answer holds its secret, once.",
    authScopes: { scope: "keys:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
    errors: { types: [ValidationError], union: { name: "CreateApiKeyResult" } },
    resolve: async (_root, { input }, ctx) => {
      const replaced = replacedCaller(ctx, "input");
      if (replaced) throw replaced;
      const name = validKeyName(input.name);
      const scopes = [...new Set(input.scopes)];
      if (!scopes.length) throw new ValidationError("scopes", "A key needs at least one scope");
      const beyond = scopesBeyondCaller(ctx, scopes);
      if (beyond.length) {
        throw new ValidationError(
          "scopes",
          `A key can hand out only scopes it holds; yours lacks ${beyond.join(", ")}`,
        );
      }
      const days = within(input.expiresInDays, "expiresInDays", 1, MAX_EXPIRES_IN_DAYS);
      const expiresAt = days === null ? null : new Date(Date.now() + days * 86_400_000);
      withinCallerExpiry(ctx, expiresAt, "expiresInDays");
      const tenantId = tenantOf(ctx);
      const max = ctx.apiKeys.maxActivePerTenant;
      const created = await ctx.db.$transaction(async (tx) => {
        if ((await activeKeysOfLockedTenant(tx as unknown as Db, tenantId)) >= max) return null;
        return createApiKey(tx as unknown as Db, { tenantId, name, scopes, expiresAt });
      });
      if (!created) throw tooMany(max);
      return { apiKey: created.key, secret: created.secret };
    },
  }),
  rotateApiKey: t.field({
    type: RotateApiKeySuccess,
    description:
      "Replaces a key with a new one of the same name, scopes and expiry; the old one is revoked now, or expires " +
      "after `graceSeconds` so that the CMS can switch without a gap.",
    authScopes: { scope: "keys:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: RotateApiKeyInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "RotateApiKeyResult" } },
    resolve: async (_root, { input }, ctx) => {
      const grace = within(input.graceSeconds, "graceSeconds", 0, MAX_GRACE_SECONDS) ?? 0;
      const old = await manageableKey(ctx, String(input.id), "rotate");
      if (stateOf(old) !== "ACTIVE") throw new ValidationError("id", `The key is ${stateOf(old).toLowerCase()}`);
      // The new key keeps the old one's expiry: it may not outlive the caller either.
      withinCallerExpiry(ctx, old.expiresAt, "id");
      const tenantId = tenantOf(ctx);
      const max = ctx.apiKeys.maxActivePerTenant;
      const rotated = await ctx.db.$transaction(async (tx) => {
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
        return { apiKey: created.key, secret: created.secret, previous };
      });
      if (!rotated) throw tooMany(max);
      return rotated;
    },
  }),
  revokeApiKey: t.field({
    type: RevokeApiKeySuccess,
    description:
      "Revokes one of the tenant's keys: refused on the next request, and its live subscriptions end at once.",
    authScopes: { scope: "keys:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "RevokeApiKeyResult" } },
    resolve: async (_root, { id }, ctx) => {
      const key = await manageableKey(ctx, String(id), "revoke");
      return { apiKey: await revokeKey(ctx.db, key) };
    },
  }),
}));
