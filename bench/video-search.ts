// Finding a tenant's videos (`npm run bench:search`): seeds one tenant with N videos (and a second
// tenant with N/10 that must never match) straight in SQL with generate_series, in a throw-away
// database migrated like any other, then times the API's own search (findVideoPage, then the rows
// by id, as the `videos` resolver does) for each filter: p50 and p95 beside the goal. Figures, not
// assertions (docs/performance.md, "Finding videos").
//   npm run bench:search                       1,000,000 videos, 30 runs per case
//   npm run bench:search -- --videos=100000    quicker
// A third tenant's --shared videos (200,000) all hold one word in their titles ("Episode N"): the worst
// title search, whose text's trigrams every title holds but none matches whole, reads all of them.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import type { VideoFilter, VideoOrder } from "../src/videos/video-search.ts";

const USAGE = `usage: npm run bench:search -- [--videos=N] [--shared=S] [--runs=R] [--timeout-ms=T] [--explain]
Creates a throw-away database on DATABASE_URL's server (default postgresql://postgres@127.0.0.1:5432/postgres),
applies the migrations, seeds N videos for one tenant (and N/10 for another) with generate_series, and
times a first page of 20 for each filter, R runs each (p50, p95), and the worst title search on a third
tenant of S videos whose titles all hold one word. A title search's statements stop after T ms
(VIDEO_SEARCH_TIMEOUT_MS; 0: never). --explain prints each query's plan.
Defaults: 1,000,000 videos, 200,000 shared, 30 runs, 500 ms. The database is dropped at the end, unless --keep (its name is printed).`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    videos: { type: "string", default: "1000000" },
    shared: { type: "string", default: "200000" },
    "timeout-ms": { type: "string", default: "500" },
    runs: { type: "string", default: "30" },
    explain: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { default: pg } = await import("pg");
const { createDb } = await import("../src/db/client.ts");
const { applyMigrations } = await import("../src/db/migrate.ts");
const { Prisma } = await import("../src/generated/prisma/client.ts");
const { findVideoPage, SearchTimeoutError, videoCursor } = await import("../src/videos/video-search.ts");
const videos = Number(flags.videos);
const shared = Number(flags.shared);
const runs = Number(flags.runs);
const timeoutMs = Number(flags["timeout-ms"]);
if (!(Number.isInteger(timeoutMs) && timeoutMs >= 0)) usageError(USAGE, "--timeout-ms must be a whole number");
if (
  !(Number.isInteger(videos) && videos >= 1000 && Number.isInteger(shared) && shared >= 1000) ||
  !(Number.isInteger(runs) && runs >= 5)
) {
  usageError(USAGE, "--videos and --shared must be whole numbers of at least 1000 and --runs at least 5");
}

/** The goal each case is read against: a CMS's search box answers within one frame of a page's work. */
const GOAL_P95_MS = 50;

const adminUrl = process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/postgres";
const name = `videograph_bench_search_${randomBytes(4).toString("hex")}`;
const url = new URL(adminUrl);
url.pathname = `/${name}`;

const TITLE_WORDS = [
  "Lecture",
  "Cooking",
  "Sports",
  "News",
  "Travel",
  "Music",
  "Interview",
  "Keynote",
  "Tutorial",
  "Review",
  "Trailer",
  "Podcast",
  "Webinar",
  "Recap",
  "Highlights",
  "Behind the scenes",
  "Unboxing",
  "Q&A",
  "Live",
  "Demo",
];
const TOPICS = [
  "algebra",
  "pasta",
  "football",
  "elections",
  "japan",
  "jazz",
  "founder",
  "launch",
  "typescript",
  "camera",
  "sequel",
  "history",
  "pricing",
  "season",
  "goals",
  "studio",
  "phone",
];
const TAGS = ["news", "sport", "music", "food", "travel", "tech", "gpu", "kids", "docs", "live", "archive", "promo"];
const LANGS = ["en", "de", "fr", "es", "ja"];

const sqlArray = (values: string[]) => `ARRAY[${values.map((v) => `'${v.replace(/'/g, "''")}'`).join(",")}]`;

/** N videos of `tenant`, newest last, created 10 s apart from `start`. */
function seedSql(tenant: string, count: number, start: string): string {
  return `
    INSERT INTO "Video" ("id", "tenantId", "title", "tags", "metadata", "externalId", "status", "source", "createdAt", "updatedAt")
    SELECT gen_random_uuid(), '${tenant}'::uuid,
      (${sqlArray(TITLE_WORDS)})[1 + i % ${TITLE_WORDS.length}] || ' ' ||
        (${sqlArray(TOPICS)})[1 + (i / ${TITLE_WORDS.length}) % ${TOPICS.length}] || ' ' || i,
      ARRAY[(${sqlArray(TAGS)})[1 + i % ${TAGS.length}], (${sqlArray(TAGS)})[1 + (i / 7) % ${TAGS.length}]],
      jsonb_build_object('lang', (${sqlArray(LANGS)})[1 + i % ${LANGS.length}], 'course', 'c' || (i % 1000)),
      'ext-' || i,
      (CASE WHEN i % 100 = 0 THEN 'FAILED' WHEN i % 50 = 1 THEN 'CANCELED' WHEN i % 20 = 2 THEN 'QUEUED'
            ELSE 'READY' END)::"VideoStatus",
      (CASE i % 10 WHEN 0 THEN 'URL' WHEN 1 THEN 'MANIM' ELSE 'UPLOAD' END)::"VideoSource",
      timestamp '${start}' + i * interval '10 seconds', now()
    FROM generate_series(1, ${count}) AS i`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${name}"`);
const db = createDb(url.toString(), { max: 2 });
try {
  await applyMigrations(url.toString());
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const tenantA = (
    await client.query(`INSERT INTO "Tenant" ("id", "name") VALUES (gen_random_uuid(), 'a') RETURNING "id"`)
  ).rows[0].id as string;
  const tenantB = (
    await client.query(`INSERT INTO "Tenant" ("id", "name") VALUES (gen_random_uuid(), 'b') RETURNING "id"`)
  ).rows[0].id as string;
  const seedStart = performance.now();
  await client.query(seedSql(tenantA, videos, "2026-01-01 00:00:00"));
  await client.query(seedSql(tenantB, Math.ceil(videos / 10), "2026-01-01 00:00:05"));
  const tenantC = (
    await client.query(`INSERT INTO "Tenant" ("id", "name") VALUES (gen_random_uuid(), 'c') RETURNING "id"`)
  ).rows[0].id as string;
  await client.query(
    `INSERT INTO "Video" ("id", "tenantId", "title", "status", "source", "createdAt", "updatedAt")
     SELECT gen_random_uuid(), $1::uuid, 'Episode ' || i, 'READY', 'UPLOAD',
       timestamp '2026-01-01 00:00:07' + i * interval '10 seconds', now()
     FROM generate_series(1, ${shared}) AS i`,
    [tenantC],
  );
  await client.query(`VACUUM ANALYZE "Video"`);
  const seedSeconds = (performance.now() - seedStart) / 1000;
  const size = (await client.query(`SELECT pg_size_pretty(pg_total_relation_size('"Video"')) AS s`)).rows[0].s;
  const middle = Math.floor(videos / 2);
  const dayStart = new Date(Date.UTC(2026, 0, 1) + middle * 10_000);

  // A cursor deep in the list: the last row of the 500th page, found once.
  const deepRow = (
    await client.query(
      `SELECT "id", "title", to_char("createdAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "createdAt" FROM "Video"
       WHERE "tenantId" = $1 ORDER BY "createdAt" DESC, "id" DESC OFFSET ${Math.min(9999, videos - 1)} LIMIT 1`,
      [tenantA],
    )
  ).rows[0];
  const deepCursor = videoCursor("CREATED_AT_DESC", { ...deepRow, createdAt: new Date(deepRow.createdAt) });
  const rareTitle = `${TOPICS[Math.floor(middle / TITLE_WORDS.length) % TOPICS.length]} ${middle}`;

  const cases: [string, VideoFilter, VideoOrder, string | null, string?][] = [
    ["no filter, newest first", {}, "CREATED_AT_DESC", null],
    ["no filter, page 501 (keyset cursor)", {}, "CREATED_AT_DESC", deepCursor],
    ["orderBy TITLE_ASC", {}, "TITLE_ASC", null],
    [`titleContains '${rareTitle}' (one)`, { titleContains: rareTitle }, "CREATED_AT_DESC", null],
    ["titleContains 'jazz' (1 in 17)", { titleContains: "jazz" }, "CREATED_AT_DESC", null],
    ["titleContains 'zzzz' (no match)", { titleContains: "zzzz" }, "CREATED_AT_DESC", null],
    ["tags [gpu] (1 in 12)", { tags: ["gpu"] }, "CREATED_AT_DESC", null],
    ["tags [gpu, news] (rare pair)", { tags: ["gpu", "news"] }, "CREATED_AT_DESC", null],
    ["metadata {course: c42} (1 in 1000)", { metadata: [{ key: "course", value: "c42" }] }, "CREATED_AT_DESC", null],
    ["metadata {lang: de} (1 in 5)", { metadata: [{ key: "lang", value: "de" }] }, "CREATED_AT_DESC", null],
    ["externalId", { externalId: `ext-${middle}` }, "CREATED_AT_DESC", null],
    ["status FAILED (1 in 100)", { status: "FAILED" }, "CREATED_AT_DESC", null],
    ["source URL (1 in 10)", { source: "URL" }, "CREATED_AT_DESC", null],
    [
      "created within one day",
      { createdFrom: dayStart, createdBefore: new Date(dayStart.getTime() + 86_400_000) },
      "CREATED_AT_DESC",
      null,
    ],
    [
      "tags [gpu] + metadata {lang: de}",
      { tags: ["gpu"], metadata: [{ key: "lang", value: "de" }] },
      "CREATED_AT_DESC",
      null,
    ],
    ["the same, TITLE_ASC", { tags: ["gpu"], metadata: [{ key: "lang", value: "de" }] }, "TITLE_ASC", null],
    [
      `titleContains 'episode-', ${(shared / 1000).toFixed(0)}k shared`,
      { titleContains: "episode-" },
      "CREATED_AT_DESC",
      null,
      tenantC,
    ],
  ];

  console.log(
    `Finding videos: ${videos.toLocaleString("en")} videos of one tenant (+${Math.ceil(videos / 10).toLocaleString("en")} of another), ` +
      `table ${size}, seeded and indexed in ${seedSeconds.toFixed(1)} s; first page of 20, ${runs} runs per case, ` +
      `title searches stopped after ${timeoutMs > 0 ? `${timeoutMs} ms` : "no time (no timeout)"}. ` +
      `Goal: p95 < ${GOAL_P95_MS} ms.`,
  );
  console.log(`${"case".padEnd(44)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)}  rows  goal`);
  for (const [label, filter, order, after, tenant = tenantA] of cases) {
    // A search stopped by its timeout answers no rows: "stopped" in the rows' column.
    const once = async () => {
      try {
        const page = await findVideoPage(db, tenant, filter, order, { first: 20, after }, timeoutMs);
        const rows = await db.video.findMany({ where: { id: { in: page.ids }, tenantId: tenant } });
        return rows.length;
      } catch (err) {
        if (err instanceof SearchTimeoutError) return -1;
        throw err;
      }
    };
    for (let i = 0; i < 5; i++) await once();
    const times: number[] = [];
    let count = 0;
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      count = await once();
      times.push(performance.now() - start);
    }
    times.sort((x, y) => x - y);
    const p95 = percentile(times, 95);
    console.log(
      `${label.padEnd(44)} ${percentile(times, 50).toFixed(1).padStart(8)} ${p95.toFixed(1).padStart(8)} ` +
        `${(count < 0 ? "stopped" : String(count)).padStart(5)}  ${p95 < GOAL_P95_MS ? "met" : "MISSED"}`,
    );
    if (flags.explain) {
      // A title search's probe first, then the query it falls back to.
      for (const statement of await explainable(tenant, filter, order, after)) {
        const plan = await db
          .$queryRawUnsafe<{ "QUERY PLAN": string }[]>(`EXPLAIN ${statement}`)
          .catch((err: Error) => [{ "QUERY PLAN": `(no plan: ${err.message})` }]);
        for (const line of plan) console.log(`    ${line["QUERY PLAN"]}`);
      }
    }
  }
  await client.end();

  /** The search's statements for `filter`, by asking the search to run through a recording client. */
  async function explainable(
    tenant: string,
    filter: VideoFilter,
    order: VideoOrder,
    after: string | null,
  ): Promise<string[]> {
    const statements: string[] = [];
    const recorder = {
      $queryRaw: (strings: TemplateStringsArray, ...values: unknown[]) => {
        const query = Prisma.sql(strings, ...values);
        statements.push(query.text.replace(/\$(\d+)/g, (_m, n: string) => literal(query.values[Number(n) - 1])));
        return Promise.resolve([]);
      },
      // A title search's statements run in a transaction with its timeout: recorded as the rest.
      $executeRawUnsafe: () => Promise.resolve(0),
      $transaction: (run: (tx: unknown) => Promise<unknown>) => run(recorder),
    };
    await findVideoPage(recorder as never, tenant, filter, order, { first: 20, after }, timeoutMs);
    return statements;
  }
  function literal(value: unknown): string {
    if (Array.isArray(value)) return `ARRAY[${value.map(literal).join(",")}]`;
    if (typeof value === "number") return String(value);
    return `'${String(value).replace(/'/g, "''")}'`;
  }
} finally {
  await db.$disconnect();
  if (flags.keep) console.log(`Kept the database ${name}.`);
  else await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}
