/**
 * API keys from the command line (operators):
 *   npm run apikey:create -- --tenant acme --scopes videos:read,videos:write [--name cms] [--expires-days 90]
 *   npm run apikey:list   [-- --tenant acme]
 *   npm run apikey:revoke -- <key id or prefix>
 * Uses DATABASE_URL; without it, the embedded Postgres under DATA_DIR (the one a running
 * `npm start` serves, or a temporary start of it).
 */
import { parseArgs } from "node:util";
import { createApiKey, ensureTenant, revokeApiKey } from "../src/auth/api-keys.ts";
import { parseScopes, SCOPES } from "../src/auth/scopes.ts";
import { loadEnv } from "../src/config.ts";
import { createDb } from "../src/db/client.ts";
import { runningEmbeddedPostgres, startEmbeddedPostgres } from "../src/db/embedded.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { setLogLevel } from "../src/log.ts";

const [command, ...rest] = process.argv.slice(2);
const { values, positionals } = parseArgs({
  args: rest,
  allowPositionals: true,
  options: {
    tenant: { type: "string" },
    scopes: { type: "string" },
    name: { type: "string" },
    "expires-days": { type: "string" },
  },
});

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

if (!["create", "list", "revoke"].includes(command ?? "")) fail("usage: apikey create --tenant T --scopes a,b | list [--tenant T] | revoke <id or prefix>");
const env = loadEnv();
setLogLevel("warn");
let stopEmbedded: (() => Promise<void>) | null = null;
let url = env.DATABASE_URL ?? (await runningEmbeddedPostgres(env.DATA_DIR));
if (!url) {
  const embedded = await startEmbeddedPostgres(env.DATA_DIR);
  url = embedded.url;
  stopEmbedded = embedded.stop;
}
await applyMigrations(url);
const db = createDb(url, { max: 2 });
try {
  if (command === "create") {
    if (!values.tenant) fail("--tenant is required (a name; created if new)");
    if (!values.scopes) fail(`--scopes is required, from: ${SCOPES.join(", ")}`);
    let scopes;
    try {
      scopes = parseScopes(values.scopes);
    } catch (err) {
      fail((err as Error).message);
    }
    const days = values["expires-days"] === undefined ? null : Number(values["expires-days"]);
    if (days !== null && !(days > 0)) fail("--expires-days is a positive number");
    const tenant = await ensureTenant(db, values.tenant);
    const { key, secret } = await createApiKey(db, {
      tenantId: tenant.id,
      name: values.name ?? "created with apikey:create",
      scopes,
      expiresAt: days === null ? null : new Date(Date.now() + days * 86_400_000),
    });
    process.stdout.write(`${JSON.stringify({ id: key.id, tenant: tenant.name, tenantId: tenant.id, scopes: key.scopes, expiresAt: key.expiresAt })}\n`);
    process.stderr.write(`API key (shown once, keep it):\n`);
    process.stdout.write(`${secret}\n`);
  } else if (command === "list") {
    const keys = await db.apiKey.findMany({
      where: values.tenant ? { tenant: { name: values.tenant } } : {},
      include: { tenant: true },
      orderBy: { createdAt: "asc" },
    });
    for (const k of keys) {
      const state = k.revokedAt ? "revoked" : k.expiresAt && k.expiresAt < new Date() ? "expired" : "active";
      process.stdout.write(`${k.id}  ${k.prefix}…  ${k.tenant.name}  ${state}  ${k.scopes.join(",")}  last used ${k.lastUsedAt?.toISOString() ?? "never"}  ${k.name}\n`);
    }
  } else {
    const target = positionals[0] ?? fail("usage: apikey revoke <key id or prefix>");
    const key = await revokeApiKey(db, target);
    if (!key) fail(`No API key with id or prefix ${target}`);
    process.stdout.write(`revoked ${key.id} (${key.prefix}…)\n`);
  }
} finally {
  await db.$disconnect();
  await stopEmbedded?.();
}
