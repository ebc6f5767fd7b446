/**
 * API keys from the command line (operators):
 *   npm run apikey:create -- --tenant acme --scopes videos:read,videos:write [--name cms] [--expires-days 90]
 *   npm run apikey:list   [-- --tenant acme]
 *   npm run apikey:revoke -- <key id or prefix>
 * Uses DATABASE_URL; without it, the embedded Postgres under DATA_DIR (the one a running
 * `npm start` serves, or a temporary start of it).
 */
import { parseScopes, SCOPES } from "../src/auth/scopes.ts";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const USAGE = {
  create: `usage: npm run apikey:create -- --tenant <name> --scopes <a,b> [--name <label>] [--expires-days <n>]
Creates an API key (and the tenant, if new) and prints it once. Scopes: ${SCOPES.join(", ")}.`,
  list: `usage: npm run apikey:list [-- --tenant <name>]
Lists API keys (id, prefix, tenant, state, scopes, last use), never their secrets.`,
  revoke: `usage: npm run apikey:revoke -- <key id or prefix>
Revokes a key; it stops working on the next request.`,
};
const ALL_USAGE =
  `${USAGE.create}\n\n${USAGE.list}\n\n${USAGE.revoke}\n\nUses DATABASE_URL, or the embedded ` +
  `Postgres under DATA_DIR.`;

const [command, ...rest] = process.argv.slice(2);
if (command !== "create" && command !== "list" && command !== "revoke") {
  if (command === "--help" || command === "-h") parseCommandLine(ALL_USAGE, { args: [command] });
  usageError(
    ALL_USAGE,
    command === undefined ? "a command is required: create, list or revoke" : `unknown command ${command}`,
  );
}
const usage =
  `${USAGE[command]}\nUses DATABASE_URL, or the embedded Postgres under DATA_DIR (of a running \`npm ` +
  `start\`, or started for the command).`;
const parsed = parseCommandLine(usage, {
  args: rest,
  allowPositionals: command === "revoke",
  options:
    command === "create"
      ? {
          tenant: { type: "string" },
          scopes: { type: "string" },
          name: { type: "string" },
          "expires-days": { type: "string" },
        }
      : command === "list"
        ? { tenant: { type: "string" } }
        : {},
});
// Every option is a string; which ones a command takes is checked above.
const values = parsed.values as { tenant?: string; scopes?: string; name?: string; "expires-days"?: string };
const { positionals } = parsed;
if (command === "revoke" && positionals.length !== 1) usageError(usage, "one key id or prefix is required");

// Checked before any database is reached, so a mistake costs no start of the embedded Postgres.
let scopes: ReturnType<typeof parseScopes> = [];
let days: number | null = null;
if (command === "create") {
  if (!values.tenant) usageError(usage, "--tenant is required (a name; created if new)");
  if (!values.scopes) usageError(usage, `--scopes is required, from: ${SCOPES.join(", ")}`);
  try {
    scopes = parseScopes(values.scopes);
  } catch (err) {
    usageError(usage, (err as Error).message);
  }
  days = values["expires-days"] === undefined ? null : Number(values["expires-days"]);
  if (days !== null && !(days > 0)) usageError(usage, "--expires-days is a positive number");
}
// The database's modules are imported once the command line is read: --help and a mistake need none of them.
const { createApiKey, ensureTenant, revokeApiKey } = await import("../src/auth/api-keys.ts");
const { loadEnv } = await import("../src/config.ts");
const { openCommandDatabase } = await import("../src/db/command-database.ts");
const { setLogLevel } = await import("../src/log.ts");

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

const env = loadEnv();
setLogLevel("warn");
const { db, close } = await openCommandDatabase(env);
try {
  if (command === "create") {
    const tenant = await ensureTenant(db, values.tenant!);
    const { key, secret } = await createApiKey(db, {
      tenantId: tenant.id,
      name: values.name ?? "created with apikey:create",
      scopes,
      expiresAt: days === null ? null : new Date(Date.now() + days * 86_400_000),
    });
    const created = {
      id: key.id,
      tenant: tenant.name,
      tenantId: tenant.id,
      scopes: key.scopes,
      expiresAt: key.expiresAt,
    };
    process.stdout.write(`${JSON.stringify(created)}\n`);
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
      process.stdout.write(
        `${k.id}  ${k.prefix}…  ${k.tenant.name}  ${state}  ${k.scopes.join(",")}  last ` +
          `used ${k.lastUsedAt?.toISOString() ?? "never"}  ${k.name}\n`,
      );
    }
  } else {
    const target = positionals[0]!;
    const key = await revokeApiKey(db, target);
    if (!key) fail(`No API key with id or prefix ${target}`);
    process.stdout.write(`revoked ${key.id} (${key.prefix}…)\n`);
  }
} finally {
  await close();
}
