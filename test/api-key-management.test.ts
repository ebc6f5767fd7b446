import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, ensureTenant } from "../src/auth/api-keys.ts";
import { startTestApp, wsClientAt, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, operationText, type VariablesOf } from "./support/graphql.ts";
import { CREATE_UPLOAD, createUpload } from "./support/uploads.ts";

const bearer = (secret: string) => `Bearer ${secret}`;

const CREATE = graphql(`
  mutation($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      __typename
      ... on CreateApiKeySuccess { secret apiKey { id name prefix scopes state expiresAt } }
      ... on ValidationError { field message }
    }
  }`);
const ROTATE = graphql(`
  mutation($input: RotateApiKeyInput!) {
    rotateApiKey(input: $input) {
      __typename
      ... on RotateApiKeySuccess {
        secret apiKey { id name scopes state expiresAt } previous { id state revokedAt expiresAt }
      }
      ... on ValidationError { field message }
      ... on NotFoundError { message }
    }
  }`);
const REVOKE = graphql(`
  mutation($id: ID!) {
    revokeApiKey(id: $id) {
      __typename
      ... on RevokeApiKeySuccess { apiKey { id state revokedAt } }
      ... on ValidationError { field message }
      ... on NotFoundError { message }
    }
  }`);
const KEYS = graphql(
  `{ apiKeys(first: 50) { edges { node { id name prefix scopes state createdAt lastUsedAt expiresAt revokedAt } } } }`,
);
const VIDEOS = graphql(`{ videos { edges { node { id } } } }`);
const VIDEO_TYPES = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename } }`);
type KeyInput = VariablesOf<typeof CREATE>["input"];

describe("API keys managed through the public API (keys:admin)", () => {
  let t: TestApp;
  /** Tenant B's own key manager, to show that tenants never see each other's keys. */
  let adminB: string;
  let keyIdB: string;

  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { API_KEYS_MAX_PER_TENANT: "12", AUTH_RECHECK_SECONDS: "1" } });
    const db = t.app.services.db;
    adminB = await tenantKeySecret(db, "tenant-b", ["videos:read", "keys:admin"], "b-admin");
    const { id } = await ensureTenant(db, "tenant-b");
    keyIdB = (await createApiKey(db, { tenantId: id, name: "b-cms", scopes: ["videos:read"] })).key.id;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const create = async (input: KeyInput, as?: string) =>
    (await t.gql(CREATE, { input }, as === undefined ? undefined : bearer(as))).data?.createApiKey;
  /** `create`, expecting CreateApiKeySuccess. */
  const created = async (input: KeyInput, as?: string) =>
    expectTypename(await create(input, as), "CreateApiKeySuccess");
  const keys = async (as?: string) => {
    const res = await t.gql(KEYS, {}, as === undefined ? undefined : bearer(as));
    if (!res.data) throw new Error(JSON.stringify(res.errors));
    return res.data.apiKeys.edges.map((e) => e.node);
  };

  it("creates a key with the scopes asked for, shows its secret once, and the key does what its scopes allow", async () => {
    const made = await created({ name: "  cms  ", scopes: ["VIDEOS_READ"], expiresInDays: 30 });
    expect(made.secret).toMatch(/^vg_[A-Za-z0-9_-]{40,}$/);
    expect(made.apiKey).toMatchObject({ name: "cms", prefix: made.secret.slice(0, 10), scopes: ["VIDEOS_READ"] });
    expect(made.apiKey.state).toBe("ACTIVE");
    const days = (Date.parse(made.apiKey.expiresAt!) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);

    expect((await t.gql(VIDEOS, {}, bearer(made.secret))).data.videos.edges).toEqual([]);
    const write = await t.gql(CREATE_UPLOAD, { input: { title: "t" } }, bearer(made.secret));
    expect(write.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");

    // Listed, with when it was used, and nothing of the secret but its prefix.
    const listing = await t.gql(KEYS);
    expect(JSON.stringify(listing)).not.toContain(made.secret.slice(10));
    const listed = listing.data.apiKeys.edges.map((e) => e.node).find((k) => k.id === made.apiKey.id);
    expect(listed).toMatchObject({ name: "cms", state: "ACTIVE", revokedAt: null });
    await expect.poll(async () => (await keys()).find((k) => k.id === made.apiKey.id)!.lastUsedAt).not.toBeNull();
  });

  it("a key hands out, rotates and revokes only keys within its own scopes", async () => {
    const manager = (await created({ name: "manager", scopes: ["VIDEOS_READ", "KEYS_ADMIN"] })).secret;
    // More than it holds: refused, naming what it lacks.
    expect(await create({ name: "escalate", scopes: ["VIDEOS_WRITE"] }, manager)).toEqual({
      __typename: "ValidationError",
      field: "scopes",
      message: "A key can hand out only scopes it holds; yours lacks videos:write",
    });
    // The admin key (every scope) can be neither rotated (a secret with its scopes) nor revoked by it.
    const admin = (await keys()).find((k) => k.name.startsWith("bootstrap"))!;
    const rotated = (await t.gql(ROTATE, { input: { id: admin.id } }, bearer(manager))).data.rotateApiKey;
    expect(rotated).toMatchObject({ __typename: "ValidationError", field: "id" });
    expect(expectTypename(rotated, "ValidationError").message).toMatch(
      /^Cannot rotate a key with scopes your key lacks: videos:write, /,
    );
    const revoked = (await t.gql(REVOKE, { id: admin.id }, bearer(manager))).data.revokeApiKey;
    expect(expectTypename(revoked, "ValidationError").message).toMatch(
      /^Cannot revoke a key with scopes your key lacks: /,
    );
    expect((await t.gql(VIDEOS)).data.videos).toBeDefined();
    // Within its scopes it may.
    const narrow = await created({ name: "narrow", scopes: ["VIDEOS_READ"] }, manager);
    expect((await t.gql(REVOKE, { id: narrow.apiKey.id }, bearer(manager))).data.revokeApiKey.__typename).toBe(
      "RevokeApiKeySuccess",
    );
    // A key without keys:admin manages nothing.
    const reader = (await created({ name: "reader", scopes: ["VIDEOS_READ"] })).secret;
    expect((await t.gql(KEYS, {}, bearer(reader))).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(
      (await t.gql(CREATE, { input: { name: "x", scopes: ["VIDEOS_READ"] } }, bearer(reader))).errors?.[0]?.extensions
        ?.code,
    ).toBe("FORBIDDEN");
  });

  it("a key mints and rotates only keys that expire no later than itself; rotated, in its grace, it manages none", async () => {
    const manager = await created({
      name: "three-day manager",
      scopes: ["KEYS_ADMIN", "VIDEOS_READ"],
      expiresInDays: 3,
    });
    const m = manager.secret;
    // Before, a key expiring soon minted keys with no expiry, and so outlived itself.
    for (const input of [{}, { expiresInDays: 3 }, { expiresInDays: 30 }])
      expect(await create({ name: "outliving", scopes: ["VIDEOS_READ"], ...input }, m)).toMatchObject({
        __typename: "ValidationError",
        field: "expiresInDays",
        message: `A key makes only keys that expire no later than itself (${manager.apiKey.expiresAt})`,
      });
    const shorter = await created({ name: "two-day cms", scopes: ["VIDEOS_READ"], expiresInDays: 2 }, m);
    // A rotation keeps the key's expiry: one with none (the admin's) is not the manager's to rotate.
    const forever = await created({ name: "no expiry", scopes: ["VIDEOS_READ"] });
    expect((await t.gql(ROTATE, { input: { id: forever.apiKey.id } }, bearer(m))).data.rotateApiKey).toMatchObject({
      __typename: "ValidationError",
      field: "id",
    });
    expect((await t.gql(ROTATE, { input: { id: shorter.apiKey.id } }, bearer(m))).data.rotateApiKey.__typename).toBe(
      "RotateApiKeySuccess",
    );

    // The manager is rotated with a grace (it leaked, say): in its grace it still authenticates,
    // but mints, rotates and revokes nothing, its replacement included.
    const rotated = expectTypename(
      (await t.gql(ROTATE, { input: { id: manager.apiKey.id, graceSeconds: 600 } }, bearer(m))).data.rotateApiKey,
      "RotateApiKeySuccess",
    );
    const replacement = rotated.apiKey.id;
    expect((await keys(m)).length).toBeGreaterThan(0);
    const refusal = "This key was rotated: in its grace it authenticates, but manages no key";
    expect(await create({ name: "from the grace", scopes: ["VIDEOS_READ"], expiresInDays: 1 }, m)).toEqual({
      __typename: "ValidationError",
      field: "input",
      message: refusal,
    });
    expect((await t.gql(ROTATE, { input: { id: replacement } }, bearer(m))).data.rotateApiKey).toEqual({
      __typename: "ValidationError",
      field: "id",
      message: refusal,
    });
    expect((await t.gql(REVOKE, { id: replacement }, bearer(m))).data.revokeApiKey).toEqual({
      __typename: "ValidationError",
      field: "id",
      message: refusal,
    });
    // The replacement manages keys as the manager did.
    await created({ name: "from the new key", scopes: ["VIDEOS_READ"], expiresInDays: 1 }, rotated.secret);
  });

  it("another tenant's keys are never listed, rotated or revoked", async () => {
    expect((await keys()).map((k) => k.name)).not.toContain("b-cms");
    expect((await keys(adminB)).map((k) => k.name).sort()).toEqual(["b-admin", "b-cms"]);
    expect((await t.gql(REVOKE, { id: keyIdB })).data.revokeApiKey).toEqual({
      __typename: "NotFoundError",
      message: `No API key with id "${keyIdB}"`,
    });
    expect((await t.gql(ROTATE, { input: { id: keyIdB } })).data.rotateApiKey.__typename).toBe("NotFoundError");
    expect((await keys(adminB)).find((k) => k.name === "b-cms")!.state).toBe("ACTIVE");
  });

  it("a revoked key is refused on its next request, and its live subscription is closed at once", async () => {
    const made = await created({ name: "live", scopes: ["VIDEOS_READ"] });
    // A video waiting for its file: its events stay open until the key is revoked.
    const video = (await createUpload(t, "w")).id;
    const client = wsClientAt(t.url, bearer(made.secret));
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      client.on("closed", (event: any) => resolve({ code: event.code, reason: event.reason })),
    );
    const connected = new Promise<void>((resolve) => client.on("connected", () => resolve()));
    client.subscribe(
      { query: operationText(VIDEO_TYPES), variables: { id: video } },
      {
        next: () => {},
        error: () => {},
        complete: () => {},
      },
    );
    await connected;
    const revokedAt = Date.now();
    const revoked = expectTypename(
      (await t.gql(REVOKE, { id: made.apiKey.id })).data.revokeApiKey,
      "RevokeApiKeySuccess",
    );
    expect(revoked.apiKey).toMatchObject({ id: made.apiKey.id, state: "REVOKED" });
    expect(await closed).toEqual({ code: 4403, reason: "Forbidden: the API key was revoked" });
    // On the NOTIFY, not on the once-a-second re-check alone: well within one interval.
    expect(Date.now() - revokedAt).toBeLessThan(1000);
    await client.dispose();
    const refused = await t.gql(VIDEOS, {}, bearer(made.secret));
    expect(refused.errors?.[0]?.message).toBe("Unauthenticated: the API key was revoked");
  });

  it("rotation: a new secret with the same name and scopes; the old key is revoked at once, or after its grace", async () => {
    const made = await created({ name: "cms-prod", scopes: ["VIDEOS_READ", "VIDEOS_WRITE"], expiresInDays: 90 });
    const now = expectTypename(
      (await t.gql(ROTATE, { input: { id: made.apiKey.id } })).data.rotateApiKey,
      "RotateApiKeySuccess",
    );
    expect(now.apiKey).toMatchObject({ name: "cms-prod", scopes: ["VIDEOS_READ", "VIDEOS_WRITE"], state: "ACTIVE" });
    expect(now.apiKey.expiresAt).toBe(made.apiKey.expiresAt);
    expect(now.previous).toMatchObject({ id: made.apiKey.id, state: "REVOKED" });
    expect((await t.gql(VIDEOS, {}, bearer(made.secret))).errors?.[0]?.message).toMatch(/revoked/);
    expect((await t.gql(VIDEOS, {}, bearer(now.secret))).data.videos).toBeDefined();

    const graced = expectTypename(
      (await t.gql(ROTATE, { input: { id: now.apiKey.id, graceSeconds: 2 } })).data.rotateApiKey,
      "RotateApiKeySuccess",
    );
    expect(graced.previous.state).toBe("ACTIVE");
    expect(Date.parse(graced.previous.expiresAt!) - Date.now()).toBeLessThanOrEqual(2000);
    // Both work during the grace, then only the new one.
    expect((await t.gql(VIDEOS, {}, bearer(now.secret))).data.videos).toBeDefined();
    expect((await t.gql(VIDEOS, {}, bearer(graced.secret))).data.videos).toBeDefined();
    await expect
      .poll(async () => (await t.gql(VIDEOS, {}, bearer(now.secret))).errors?.[0]?.message, { timeout: 5000 })
      .toBe("Unauthenticated: the API key expired");
    expect((await t.gql(VIDEOS, {}, bearer(graced.secret))).data.videos).toBeDefined();
    // A key that no longer works is not rotated.
    expect((await t.gql(ROTATE, { input: { id: made.apiKey.id } })).data.rotateApiKey).toEqual({
      __typename: "ValidationError",
      field: "id",
      message: "The key is revoked",
    });
  });

  it("refuses bad names, expiries, graces and scopes, and more active keys than the limit", async () => {
    const refusal = async (input: KeyInput) => {
      const r = await create(input);
      return r.__typename === "ValidationError" ? `${r.field}: ${r.message}` : r.__typename;
    };
    expect(await refusal({ name: "   ", scopes: ["VIDEOS_READ"] })).toBe("name: A key's name has 1 to 100 characters");
    expect(await refusal({ name: "x".repeat(101), scopes: ["VIDEOS_READ"] })).toBe(
      "name: A key's name has 1 to 100 characters",
    );
    expect(await refusal({ name: "new\nline", scopes: ["VIDEOS_READ"] })).toBe(
      "name: name must not contain control characters",
    );
    expect(await refusal({ name: "bell\u0085", scopes: ["VIDEOS_READ"] })).toBe(
      "name: name must not contain control characters",
    );
    // A name that displays as another key's: a joiner inside it, or a right-to-left override.
    for (const name of ["ad\u200dmin", "cms\u202e\u200bnimda"])
      expect(await refusal({ name, scopes: ["VIDEOS_READ"] })).toBe(
        "name: name must not contain invisible or direction-changing characters (bidi overrides, zero-width characters)",
      );
    expect(await refusal({ name: "none", scopes: [] })).toBe("scopes: A key needs at least one scope");
    expect(await refusal({ name: "d", scopes: ["VIDEOS_READ"], expiresInDays: 0 })).toBe(
      "expiresInDays: expiresInDays is 1 to 3650",
    );
    expect(await refusal({ name: "d", scopes: ["VIDEOS_READ"], expiresInDays: 3651 })).toBe(
      "expiresInDays: expiresInDays is 1 to 3650",
    );
    // An enum value the schema does not have: sent as it is, refused by the API.
    const unknown = await t.gql(CREATE, { input: { name: "u", scopes: ["EVERYTHING" as never] } });
    expect(unknown.errors?.[0]?.message).toMatch(/EVERYTHING/);
    const someKey = (await keys()).find((k) => k.state === "ACTIVE" && !k.name.startsWith("bootstrap"))!;
    const rotate = async (graceSeconds: number) =>
      (await t.gql(ROTATE, { input: { id: someKey.id, graceSeconds } })).data.rotateApiKey;
    expect(await rotate(-1)).toMatchObject({ field: "graceSeconds", message: "graceSeconds is 0 to 604800" });
    expect(await rotate(604_801)).toMatchObject({ field: "graceSeconds" });
    expect((await t.gql(REVOKE, { id: "not-an-id" })).data.revokeApiKey.__typename).toBe("NotFoundError");

    // API_KEYS_MAX_PER_TENANT=12 here: fill the tenant up, then one more is refused; a revocation frees a place.
    const active = async () => (await keys()).filter((k) => k.state === "ACTIVE");
    const made: string[] = [];
    while ((await active()).length < 12)
      made.push((await created({ name: `fill ${made.length}`, scopes: ["VIDEOS_READ"] })).apiKey.id);
    expect(await refusal({ name: "one too many", scopes: ["VIDEOS_READ"] })).toBe(
      "input: A tenant holds at most 12 active API keys; revoke one first",
    );
    // A rotation with a grace needs a place too; one without keeps the count.
    expect(await rotate(60)).toMatchObject({ field: "input" });
    const swapped = await rotate(0);
    expect(swapped.__typename).toBe("RotateApiKeySuccess");
    expect((await active()).length).toBe(12);
    await t.gql(REVOKE, { id: made[0]! });
    expect(await refusal({ name: "fits again", scopes: ["VIDEOS_READ"] })).toBe("CreateApiKeySuccess");
  });
});
