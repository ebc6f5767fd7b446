import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
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
