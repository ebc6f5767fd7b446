import { GraphQLError } from "graphql";
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from "jose";
import type { Db } from "../db/client.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { hashApiKey, looksLikeApiKey } from "./api-keys.ts";
import { isScope, type Principal, type Scope } from "./scopes.ts";

export interface JwtSettings {
  /** A JWKS URL (RS256/ES256 keys of the identity provider), a JWKS JSON document, or null. */
  jwks: string | null;
  /** Shared HS256 secret, or null. */
  secret: string | null;
  issuer?: string;
  audience?: string;
  /** Claim that names the viewer's tenant (its id or name). */
  tenantClaim: string;
  /** The most a JWT may grant; its `scope` claim is intersected with this. */
  allowedScopes: readonly Scope[];
  /** The longest life a JWT may have, from its `iat` (or from now, without one) to its `exp`. */
  maxLifetimeSeconds: number;
}

/** A credential was sent but is not good; the message says why, without echoing the secret. */
export class AuthenticationError extends GraphQLError {
  readonly reason: string;
  constructor(reason: string) {
    super(`Unauthenticated: ${reason}`, { extensions: { code: "UNAUTHENTICATED", http: { status: 401 } } });
    this.reason = reason;
  }
}

const LAST_USED_RESOLUTION_MS = 60_000;
const TENANT_REFS_KEPT = 10_000;

/**
 * Turns an `Authorization` value into a principal: `Bearer vg_…` (an API key) or `Bearer <JWT>`.
 * No header gives null (anonymous: every field then refuses); a bad one throws
 * AuthenticationError. HTTP requests and WebSocket `connection_init` both come through here.
 */
export function createAuthenticator(db: Db, jwt: JwtSettings) {
  let keySet: JWTVerifyGetKey | null = null;
  if (jwt.jwks) {
    keySet = jwt.jwks.trim().startsWith("{")
      ? createLocalJWKSet(JSON.parse(jwt.jwks))
      : createRemoteJWKSet(new URL(jwt.jwks));
  }
  const hmacKey = jwt.secret ? new TextEncoder().encode(jwt.secret) : null;

  // Connections that arrive while a key is being looked up share that lookup: a burst of clients
  // of one key costs one query, not one each. Nothing is kept once it answers, so a revocation
  // counts for every request that starts after it.
  const lookups = new Map<string, Promise<ApiKey | null>>();
  function lookUpApiKey(hash: string): Promise<ApiKey | null> {
    const pending = lookups.get(hash);
    if (pending) return pending;
    const lookup = db.apiKey.findUnique({ where: { hash } }).finally(() => lookups.delete(hash));
    lookups.set(hash, lookup);
    return lookup;
  }

  async function fromApiKey(secret: string, shareLookup: boolean): Promise<Principal> {
    const hash = hashApiKey(secret);
    const key = await (shareLookup ? lookUpApiKey(hash) : db.apiKey.findUnique({ where: { hash } }));
    if (!key) throw new AuthenticationError("unknown API key");
    if (key.revokedAt) throw new AuthenticationError("the API key was revoked");
    if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) throw new AuthenticationError("the API key expired");
    const now = new Date();
    if (!key.lastUsedAt || now.getTime() - key.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      // Best effort, at most once a minute per key: a lost update only makes lastUsedAt coarser.
      key.lastUsedAt = now;
      void db.apiKey.update({ where: { id: key.id }, data: { lastUsedAt: now } }).catch(() => {});
    }
    return {
      kind: "apiKey",
      tenantId: key.tenantId,
      scopes: new Set(key.scopes.filter(isScope)),
      subject: key.id,
      expiresAt: key.expiresAt?.getTime() ?? null,
      replaced: key.rotatedAt !== null,
    };
  }

  // Tenants are never renamed or deleted (nothing in the API or the CLI does either): a tenant a
  // JWT's claim named stays that tenant, so viewers' tokens cost no query per request or socket
  // after the first. Only tenants found are kept, at most TENANT_REFS_KEPT references.
  const tenantIds = new Map<string, string>();
  async function tenantIdOf(ref: string): Promise<string | null> {
    const known = tenantIds.get(ref);
    if (known) return known;
    const tenant = await db.tenant.findFirst({ where: isUuid(ref) ? { id: ref } : { name: ref } });
    if (!tenant) return null;
    if (tenantIds.size >= TENANT_REFS_KEPT) tenantIds.clear();
    tenantIds.set(ref, tenant.id);
    return tenant.id;
  }

  async function fromJwt(token: string): Promise<Principal> {
    if (!keySet && !hmacKey) throw new AuthenticationError("JWTs are not accepted here (set JWT_JWKS or JWT_SECRET)");
    const options = { issuer: jwt.issuer, audience: jwt.audience, requiredClaims: ["exp"] };
    let payload: Record<string, unknown>;
    try {
      payload = hmacKey
        ? (await jwtVerify(token, hmacKey, { ...options, algorithms: ["HS256"] })).payload
        : (await jwtVerify(token, keySet!, options)).payload;
    } catch (err) {
      const { code, claim, reason } = err as { code?: string; claim?: string; reason?: string };
      if (code === "ERR_JWT_EXPIRED") throw new AuthenticationError("the token expired");
      if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && claim === "exp" && reason === "missing")
        throw new AuthenticationError("the token has no exp claim");
      throw new AuthenticationError("the token is not valid");
    }
    // An iat in the future must not make a long-lived token look short: count from now at the latest.
    const nowSeconds = Math.floor(Date.now() / 1000);
    const from = typeof payload.iat === "number" ? Math.min(payload.iat, nowSeconds) : nowSeconds;
    if ((payload.exp as number) - from > jwt.maxLifetimeSeconds) {
      throw new AuthenticationError(
        `the token's lifetime exceeds ${jwt.maxLifetimeSeconds} s (JWT_MAX_LIFETIME_SECONDS)`,
      );
    }
    const tenantRef = payload[jwt.tenantClaim];
    if (typeof tenantRef !== "string" || !tenantRef)
      throw new AuthenticationError(`the token has no ${jwt.tenantClaim} claim`);
    const tenantId = await tenantIdOf(tenantRef);
    if (!tenantId) throw new AuthenticationError("the token's tenant does not exist");
    const asked = typeof payload.scope === "string" ? payload.scope.split(" ") : ["videos:read"];
    const scopes = new Set(asked.filter((s): s is Scope => isScope(s) && jwt.allowedScopes.includes(s)));
    return {
      kind: "jwt",
      tenantId,
      scopes,
      subject: String(payload.sub ?? ""),
      expiresAt: (payload.exp as number) * 1000,
      replaced: false,
    };
  }

  /**
   * `fresh` asks the database on its own rather than share a lookup under way, which may have
   * started before a revocation that the caller was told about.
   */
  return async function authenticate(
    authorization: string | null | undefined,
    options: { fresh?: boolean } = {},
  ): Promise<Principal | null> {
    if (authorization === null || authorization === undefined || authorization === "") return null;
    const m = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!m) throw new AuthenticationError("expected `Authorization: Bearer <API key or JWT>`");
    const token = m[1]!;
    return looksLikeApiKey(token) ? fromApiKey(token, !options.fresh) : fromJwt(token);
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;
