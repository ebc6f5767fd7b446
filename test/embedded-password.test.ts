import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  embeddedPasswordFile,
  runningEmbeddedPostgres,
  startEmbeddedPostgres,
  type EmbeddedDatabase,
} from "../src/db/embedded.ts";

/** The SQLSTATE a connection attempt fails with, or "connected". */
async function connectAs(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    await client.end();
    return "connected";
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  }
}

const withPassword = (url: string, password: string) => {
  const u = new URL(url);
  u.password = password;
  return u.toString();
};

describe("the embedded Postgres has a password of its own, kept owner-only under DATA_DIR", () => {
  let dataDir: string;
  let db: EmbeddedDatabase | null = null;
  afterAll(async () => {
    await db?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("a first start makes a random password (mode 0600); the old fixed one is refused", async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-pg-password-"));
    // As root (CI), the embedded Postgres runs as the "postgres" user, which must reach the data dir.
    await chmod(dataDir, 0o755);
    db = await startEmbeddedPostgres(dataDir);
    const file = embeddedPasswordFile(dataDir);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const password = (await readFile(file, "utf8")).trim();
    expect(password).toMatch(/^[\w-]{32}$/);
    expect(decodeURIComponent(new URL(db.url).password)).toBe(password);
    expect(await connectAs(db.url)).toBe("connected");
    // 28P01: invalid_password.
    expect(await connectAs(withPassword(db.url, "videograph"))).toBe("28P01");
    // The CLI finds the running server with the same password.
    expect(await runningEmbeddedPostgres(dataDir)).toBe(db.url);
  });

  it("a data dir made with the fixed password gets a random one at its next start", async () => {
    const client = new pg.Client({ connectionString: db!.url });
    await client.connect();
    await client.query("ALTER USER videograph PASSWORD 'videograph'");
    await client.end();
    await rm(embeddedPasswordFile(dataDir));
    await db!.stop();
    db = null;

    db = await startEmbeddedPostgres(dataDir);
    const password = (await readFile(embeddedPasswordFile(dataDir), "utf8")).trim();
    expect(password).not.toBe("videograph");
    expect(await connectAs(db.url)).toBe("connected");
    expect(await connectAs(withPassword(db.url, "videograph"))).toBe("28P01");
  });
});

describe("a running embedded Postgres is found only by a postmaster.pid naming a live process", () => {
  it("a pid of 0, of a process that is gone, or not a number is no running server", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "videograph-pg-pid-"));
    try {
      await mkdir(path.join(dataDir, "postgres"));
      // postmaster.pid: the pid, the data dir, the start time, the port (then more).
      const pidFile = (pid: string) =>
        writeFile(path.join(dataDir, "postgres", "postmaster.pid"), `${pid}\n${dataDir}\n1700000000\n54329\n`);
      // 0 would name this process's group, which is always there.
      for (const pid of ["0", "-1", "2147483646", "not-a-pid"]) {
        await pidFile(pid);
        expect(await runningEmbeddedPostgres(dataDir), pid).toBeNull();
      }
      // This process stands in for a live postmaster: the server is taken as running on its port.
      await pidFile(String(process.pid));
      expect(new URL((await runningEmbeddedPostgres(dataDir))!).port).toBe("54329");
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
