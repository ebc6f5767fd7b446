import {
  apiKeyState,
  createTenantApiKey,
  MAX_EXPIRES_IN_DAYS,
  MAX_GRACE_SECONDS,
  MAX_KEY_NAME_LENGTH,
  revokeTenantApiKey,
  rotateTenantApiKey,
} from "../auth/key-management.ts";
import { SCOPES, type Scope } from "../auth/scopes.ts";
import { builder } from "../builder.ts";
import { principalOf, tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { refuseMalformedIdCursors } from "./id-cursors.ts";

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

const ApiKeyRef = builder.prismaObject("ApiKey", {
  description: "A credential of the tenant. Its secret is shown once, when it is made; only a hash is stored.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    prefix: t.exposeString("prefix", { description: "The secret's first 10 characters, to tell keys apart." }),
    scopes: t.field({ type: [ApiKeyScopeEnum], resolve: (k) => k.scopes as Scope[] }),
    state: t.field({ type: ApiKeyStateEnum, resolve: (k) => apiKeyState(k) }),
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
    name: t.string({ required: true, description: `1 to ${MAX_KEY_NAME_LENGTH} characters, no control characters.` }),
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
      const created = await createTenantApiKey(ctx, principalOf(ctx), input);
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
      const rotated = await rotateTenantApiKey(ctx, principalOf(ctx), { ...input, id: String(input.id) });
      return { apiKey: rotated.key, secret: rotated.secret, previous: rotated.previous };
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
    resolve: async (_root, { id }, ctx) => ({
      apiKey: await revokeTenantApiKey(ctx.db, principalOf(ctx), String(id)),
    }),
  }),
}));
