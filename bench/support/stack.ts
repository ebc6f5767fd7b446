// Pieces the load test and the chaos run share: a generated clip, a scratch database, a client of
// the public GraphQL API.
import { randomBytes } from "node:crypto";
import { chmod } from "node:fs/promises";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { canConnect } from "../../src/db/reachable.ts";
import { ADMIN_AUTH } from "../../test/support/auth.ts";
import { generateSource } from "./sources.ts";

/** Writes a `seconds` long clip of `width`x`height`: the benchmarks' `testsrc2` source (bench/support/sources.ts). */
export function generateClip(dir: string, clip: { seconds: number; width: number; height: number }): Promise<string> {
  return generateSource(dir, { source: "testsrc2", ...clip });
}

/** DATABASE_URL, else the local server on 127.0.0.1:5432, when it answers; null otherwise. */
async function reachableAdminUrl(): Promise<string | null> {
  const url = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
  return (await canConnect(url)) ? url : null;
}

/** A fresh database named `{prefix}_{random}` on the server of `adminUrl`; drop() removes it. */
async function createScratchDatabase(
  adminUrl: string,
  prefix: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE "${name}"`);
  return {
    url: Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString(),
    drop: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

export interface GraphQLResponse {
  data?: any;
  errors?: { message: string }[];
}

/** POSTs one operation to `{baseUrl}/graphql` with the test admin key (tenant "default", every scope). */
export async function postGraphQL(
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLResponse> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...ADMIN_AUTH },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GraphQLResponse;
}

export const CREATE_UPLOAD = /* GraphQL */ `
  mutation($t: String!) { createUpload(input: { title: $t }) { ... on CreateUploadSuccess { uploadUrl video { id } \
} ... on Error { message } } }`;

/**
 * A fresh database for a benchmark: on DATABASE_URL's server or 127.0.0.1:5432, else on an embedded
 * Postgres started in `embeddedDir`. drop() removes the database and stops the embedded server.
 */
export async function benchDatabase(
  embeddedDir: string,
  prefix: string,
  log: (message: string) => void,
): Promise<{ url: string; drop(): Promise<void> }> {
  let admin = await reachableAdminUrl();
  // As root, the embedded server runs as the "postgres" user, which must traverse the bench's
  // scratch directory (mkdtemp makes it 0700): others may enter it, not list it.
  if (!admin && process.getuid?.() === 0) await chmod(path.dirname(path.resolve(embeddedDir)), 0o711);
  const embedded = admin ? null : await startEmbeddedPostgres(embeddedDir);
  if (embedded) log("no Postgres at 127.0.0.1:5432; started an embedded one");
  admin ??= embedded!.url;
  const database = await createScratchDatabase(admin, prefix);
  return {
    url: database.url,
    async drop() {
      await database.drop();
      await embedded?.stop();
    },
  };
}
