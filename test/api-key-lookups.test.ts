import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, ensureTenant, revokeApiKey } from "../src/auth/api-keys.ts";
import { type Authenticate, createAuthenticator } from "../src/auth/authenticate.ts";
import { LiveCredentials } from "../src/auth/live-credentials.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

const NO_JWTS = {
  jwks: null,
  secret: null,
  tenantClaim: "tenant_id",
  allowedScopes: ["videos:read"] as const,
  maxLifetimeSeconds: 3600,
};
const bearer = (secret: string) => `Bearer ${secret}`;

describe("connections that arrive while an API key is looked up share that lookup", () => {
  let database: TestDatabase;
  let db: Db;
  let authenticate: Authenticate;
  let tenantId: string;
  let lookups = 0;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    tenantId = (await ensureTenant(db, "lookups")).id;
    const counted = db.$extends({
      query: {
        apiKey: {
          findUnique({ args, query }) {
            lookups++;
            return query(args);
          },
        },
      },
    });
    authenticate = createAuthenticator(counted as unknown as Db, NO_JWTS);
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  it("100 connections of one key at once cost one lookup, and each gets the key's principal", async () => {
    const { key, secret } = await createApiKey(db, { tenantId, name: "burst", scopes: ["videos:read"] });
    lookups = 0;
    const principals = await Promise.all(Array.from({ length: 100 }, () => authenticate(bearer(secret))));
    expect(lookups).toBe(1);
    expect(new Set(principals.map((p) => p?.subject))).toEqual(new Set([key.id]));
  });

  it("nothing is kept once the lookup answered: a key revoked after it is refused at once", async () => {
    const { key, secret } = await createApiKey(db, { tenantId, name: "revoked", scopes: ["videos:read"] });
    expect((await authenticate(bearer(secret)))?.subject).toBe(key.id);
    await revokeApiKey(db, key.id);
    await expect(authenticate(bearer(secret))).rejects.toThrow("revoked");
  });

  it("a fresh check (a live connection's re-check) does not join a lookup under way", async () => {
    const { secret } = await createApiKey(db, { tenantId, name: "fresh", scopes: ["videos:read"] });
    lookups = 0;
    await Promise.all([authenticate(bearer(secret)), authenticate(bearer(secret), { fresh: true })]);
    expect(lookups).toBe(2);
  });

  it("live connections of one key share its re-check: one lookup per interval for all, and all end when it fails", async () => {
    const { key, secret } = await createApiKey(db, { tenantId, name: "many sockets", scopes: ["videos:read"] });
    const principal = (await authenticate(bearer(secret)))!;
    const live = new LiveCredentials(authenticate, 1);
    const lost: string[] = [];
    const stops = Array.from({ length: 50 }, () =>
      live.watch(bearer(secret), principal, (reason) => lost.push(reason)),
    );
    lookups = 0;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(lookups).toBeGreaterThanOrEqual(1);
    expect(lookups).toBeLessThanOrEqual(3);
    await revokeApiKey(db, key.id);
    const deadline = Date.now() + 5000;
    while (lost.length < 50 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lost).toEqual(Array.from({ length: 50 }, () => "the API key was revoked"));
    for (const stop of stops) stop();
  });
});

describe("a JWT's tenant is looked up once", () => {
  let database: TestDatabase;
  let db: Db;
  let tenantLookups = 0;
  const secret = "jwt-secret-for-tenant-lookups-0123456789";

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  const token = (tenant: string, sub: string) =>
    new SignJWT({ tenant_id: tenant })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));

  it("viewers' tokens naming one tenant cost one tenant query in all; a tenant that does not exist is asked again", async () => {
    const tenant = await ensureTenant(db, "viewers");
    const counted = db.$extends({
      query: {
        tenant: {
          findFirst({ args, query }) {
            tenantLookups++;
            return query(args);
          },
        },
      },
    });
    const authenticate = createAuthenticator(counted as unknown as Db, { ...NO_JWTS, secret });
    for (const sub of ["a", "b", "c"]) {
      const principal = await authenticate(bearer(await token("viewers", sub)));
      expect(principal).toMatchObject({ kind: "jwt", tenantId: tenant.id, subject: sub });
    }
    expect(tenantLookups).toBe(1);
    for (let i = 0; i < 2; i++)
      await expect(authenticate(bearer(await token("not-yet", "d")))).rejects.toThrow("tenant does not exist");
    expect(tenantLookups).toBe(3);
    const later = await ensureTenant(db, "not-yet");
    expect(await authenticate(bearer(await token("not-yet", "d")))).toMatchObject({ tenantId: later.id });
  });
});
