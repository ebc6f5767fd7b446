import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, type GraphqlAnswer, graphql, type ResultOf, type VariablesOf } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const FIND = graphql(`
  query($filter: VideoFilter, $orderBy: VideoOrder, $first: Int, $after: String, $last: Int, $before: String) {
    videos(filter: $filter, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) {
      edges { cursor node { id title } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    } }`);
type Find = VariablesOf<typeof FIND>;
type Found = GraphqlAnswer<ResultOf<typeof FIND>>;
const FROM_URL = graphql(`
  mutation($input: CreateVideoFromUrlInput!) {
    createVideoFromUrl(input: $input) { __typename ... on RenderSuccess { video { id } } } }`);
const CREATED_AT = graphql(`query($id: ID!) { video(id: $id) { createdAt } }`);
const CANCEL = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename } }`);
const BY_STATUS = graphql(`{ videos(status: CANCELED, first: 50) { edges { node { id } } } }`);

const entries = (metadata: Record<string, string>) => Object.entries(metadata).map(([key, value]) => ({ key, value }));

describe("finding a tenant's videos: filters, orders and keyset cursors", () => {
  let t: TestApp;
  let keyB: string;
  /** The catalogue of the filter test, by name: its ids in tenant A, and the same videos made by tenant B. */
  const a: Record<string, string> = {};
  const b: Record<string, string> = {};
  const createdAt: Record<string, string> = {};

  /** The ids `filter` finds (as tenant A unless `authorization` says otherwise), newest first. */
  async function found(filter: Find["filter"], authorization?: string): Promise<string[]> {
    const res = await t.gql(FIND, { filter, first: 100 }, authorization);
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    return res.data.videos.edges.map((e) => e.node.id);
  }
  const ids = (names: string[], of = a) => names.map((n) => of[n]!);

  // Made oldest first; `found` lists newest first.
  const CATALOGUE: [string, Record<string, unknown>, "upload" | "url"][] = [
    ["snake", { title: "Notes on snake_case", tags: ["code"], metadata: [] }, "upload"],
    ["snakeSpace", { title: "snake case basics", tags: ["code"], metadata: [] }, "upload"],
    [
      "algebra",
      {
        title: "Lecture 1: Algebra",
        tags: ["math", "lecture"],
        metadata: entries({ course: "alg", lang: "en" }),
        externalId: "c-1",
      },
      "upload",
    ],
    [
      "geometry",
      {
        title: "lecture 2: GEOMETRY",
        tags: ["Math"],
        metadata: entries({ course: "geo", lang: "en" }),
        externalId: "c-2",
      },
      "upload",
    ],
    ["cooking", { title: "Cooking 100%_real", tags: ["food"], metadata: entries({ lang: "de" }) }, "url"],
    [
      "thousand",
      { title: "1000 real things", tags: ["food", "list"], metadata: entries({ lang: "de", course: "alg" }) },
      "upload",
    ],
    ["sports", { title: "Sports news", tags: ["news", "sport"], metadata: entries({ lang: "en" }) }, "upload"],
  ];

  beforeAll(async () => {
    t = await startTestApp({ worker: false });
    keyB = `Bearer ${await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b")}`;
    for (const [name, fields, kind] of CATALOGUE) {
      for (const [tenant, auth] of [
        [a, undefined],
        [b, keyB],
      ] as const) {
        const { title, ...rest } = fields as { title: string };
        if (kind === "upload") {
          tenant[name] = (
            await createUpload(t, title, { ...rest, tags: [...(rest as any).tags, "catalogue"] }, auth)
          ).id;
        } else {
          const input = {
            url: "https://media.example.invalid/a.mp4",
            title,
            ...rest,
            tags: [...(rest as any).tags, "catalogue"],
          };
          const res = await t.gql(FROM_URL, { input }, auth);
          tenant[name] = expectTypename(res.data.createVideoFromUrl, "RenderSuccess").video.id;
        }
      }
      const read = await t.gql(CREATED_AT, { id: a[name]! });
      createdAt[name] = read.data.video!.createdAt;
    }
    const canceled = await t.gql(CANCEL, { id: a.sports! });
    expect(canceled.data.cancelVideo.__typename).toBe("CancelVideoSuccess");
    await t.gql(CANCEL, { id: b.sports! }, keyB);
  });
  afterAll(() => t?.stop());

  it("finds by each filter, and by several at once; another tenant's videos never match", async () => {
    const cases: [Record<string, unknown>, string[]][] = [
      [{ titleContains: "LECTURE" }, ["geometry", "algebra"]],
      [{ titleContains: "geometry" }, ["geometry"]],
      // % and _ are literal: unescaped, "100%" would match "1000 real things" and "snake_case" "snake case".
      [{ titleContains: "100%" }, ["cooking"]],
      [{ titleContains: "100%_real" }, ["cooking"]],
      [{ titleContains: "snake_case" }, ["snake"]],
      [{ titleContains: "SNAKE" }, ["snakeSpace", "snake"]],
      [{ tags: ["MATH "] }, ["geometry", "algebra"]],
      [{ tags: ["math", "lecture"] }, ["algebra"]],
      [{ tags: ["food"] }, ["thousand", "cooking"]],
      [{ metadata: entries({ lang: "en" }) }, ["sports", "geometry", "algebra"]],
      [{ metadata: entries({ lang: "en", course: "alg" }) }, ["algebra"]],
      [{ metadata: entries({ course: "alg" }) }, ["thousand", "algebra"]],
      [{ externalId: "c-2" }, ["geometry"]],
      [{ status: "CANCELED" }, ["sports"]],
      [{ status: "QUEUED" }, ["cooking"]],
      [{ source: "URL" }, ["cooking"]],
      [{ createdFrom: createdAt.geometry, createdBefore: createdAt.thousand }, ["cooking", "geometry"]],
      [{ createdFrom: createdAt.thousand }, ["sports", "thousand"]],
      [{ tags: ["math"], titleContains: "geo", metadata: entries({ lang: "en" }) }, ["geometry"]],
      [{ tags: ["math"], status: "CANCELED" }, []],
    ];
    const everyA = new Set(Object.values(a));
    for (const [filter, names] of cases) {
      const scoped = { ...filter, tags: [...((filter.tags as string[]) ?? []), "catalogue"] };
      expect(await found(scoped), JSON.stringify(filter)).toEqual(ids(names));
      // Tenant B's twins match the same filter only for tenant B.
      expect(await found(scoped, keyB), `as B: ${JSON.stringify(filter)}`).toEqual(ids(names, b));
      expect((await found(scoped, keyB)).filter((id) => everyA.has(id))).toEqual([]);
    }
    // The older `status` argument still filters.
    const old = await t.gql(BY_STATUS);
    expect(old.data.videos.edges.map((e) => e.node.id)).toEqual([a.sports]);
  });

  it("refuses hostile or malformed search input with BAD_USER_INPUT naming the limit", async () => {
    const page = (await t.gql(FIND, { first: 2, orderBy: "TITLE_ASC" })).data.videos.pageInfo;
    const bad: [Find, RegExp][] = [
      [{ filter: { titleContains: "" } }, /1 to 200 characters/],
      [{ filter: { titleContains: "x".repeat(201) } }, /1 to 200 characters/],
      [{ filter: { titleContains: "abc\u0000" } }, /control characters/],
      [{ filter: { titleContains: "ab" } }, /3 letters or digits in a row/],
      [{ filter: { titleContains: "%%%_%%" } }, /3 letters or digits in a row/],
      [{ filter: { titleContains: "a-b-c-d" } }, /3 letters or digits in a row/],
      [{ filter: { tags: Array.from({ length: 21 }, (_, i) => `t${i}`) } }, /At most 20 tags/],
      [{ filter: { metadata: entries({ "bad key": "v" }) } }, /letters, digits/],
      [{ filter: { externalId: "e".repeat(129) } }, /1 to 128/],
      [{ first: 101 }, /0 to 100/],
      [{ after: "not-a-cursor" }, /Not a cursor/],
      [{ after: Buffer.from('["v1","CREATED_AT_DESC","x","not-a-uuid"]').toString("base64url") }, /Not a cursor/],
      // A cursor of another order is not one of this list.
      [{ after: page.endCursor, orderBy: "CREATED_AT_DESC" }, /Not a cursor/],
    ];
    for (const [variables, message] of bad) {
      const res = await t.gql(FIND, variables);
      expect(res.errors?.[0]?.extensions?.code, JSON.stringify(variables).slice(0, 80)).toBe("BAD_USER_INPUT");
      expect(res.errors![0]!.message).toMatch(message);
    }
  });

  it("finds a title beyond the newest thousand videos (where the probe of the newest stops) and past a cursor", async () => {
    const db = t.app.services.db;
    const keyMany = `Bearer ${await tenantKeySecret(db, "tenant-many", ["videos:read"], "many")}`;
    const tenant = await db.tenant.findUniqueOrThrow({ where: { name: "tenant-many" } });
    // 1,500 videos, the oldest titled "needle", every fifth titled "common".
    await db.$executeRaw`
      INSERT INTO "Video" ("id", "tenantId", "title", "createdAt", "updatedAt")
      SELECT gen_random_uuid(), ${tenant.id}::uuid,
        CASE WHEN i = 1 THEN 'the needle' WHEN i % 5 = 0 THEN 'common ' || i ELSE 'hay ' || i END,
        timestamp '2026-01-01' + i * interval '1 second', now()
      FROM generate_series(1, 1500) AS i`;
    const needle = await t.gql(FIND, { filter: { titleContains: "NEEDLE" }, first: 5 }, keyMany);
    expect(needle.data.videos.edges.map((e) => e.node.title)).toEqual(["the needle"]);
    const common = await t.gql(FIND, { filter: { titleContains: "common" }, first: 3 }, keyMany);
    expect(common.data.videos.edges.map((e) => e.node.title)).toEqual(["common 1500", "common 1495", "common 1490"]);
    expect(common.data.videos.pageInfo.hasNextPage).toBe(true);
    // Far down the list, a page past the probe's reach.
    let after: string | null = common.data.videos.pageInfo.endCursor;
    let last: string[] = [];
    for (let pages = 0; pages < 3; pages++) {
      const res: Found = await t.gql(FIND, { filter: { titleContains: "common" }, first: 100, after }, keyMany);
      last = res.data.videos.edges.map((e) => e.node.title);
      after = res.data.videos.pageInfo.endCursor;
    }
    expect(last[0]).toBe(`common ${1490 - 5 * 201}`);
    // Tenant A has no such videos.
    expect(await found({ titleContains: "needle" })).toEqual([]);
  });

  /** Pages through `filter` in `order`, `size` at a time, calling `between` after the first page. */
  async function pageThrough(
    filter: Find["filter"],
    orderBy: Find["orderBy"],
    size: number,
    between: () => Promise<void>,
    direction: "forward" | "backward" = "forward",
  ): Promise<string[]> {
    const titles: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const variables: Find =
        direction === "forward"
          ? { filter, orderBy, first: size, after: cursor }
          : { filter, orderBy, last: size, before: cursor };
      const res: Found = await t.gql(FIND, variables);
      expect(res.errors).toBeUndefined();
      const { edges, pageInfo } = res.data.videos;
      const page = edges.map((e) => e.node.title);
      if (direction === "forward") titles.push(...page);
      else titles.unshift(...page);
      if (pages === 0) await between();
      const more = direction === "forward" ? pageInfo.hasNextPage : pageInfo.hasPreviousPage;
      if (!more) return titles;
      cursor = direction === "forward" ? pageInfo.endCursor : pageInfo.startCursor;
    }
    throw new Error("more than 20 pages");
  }

  it("pages stay in place while videos are added: no video twice, none skipped, in every order and direction", async () => {
    const filter = { tags: ["paging"] };
    const titles = ["delta", "alpha", "echo", "charlie", "golf", "bravo", "foxtrot"];
    for (const title of titles) await createUpload(t, title, { tags: ["paging"] });
    let added = 0;
    const add = async (...more: string[]) => {
      for (const title of more) await createUpload(t, title, { tags: ["paging"] });
      added += more.length;
    };

    // Newest first: videos added meanwhile are newer than every cursor, so later pages do not show them.
    expect(await pageThrough(filter, "CREATED_AT_DESC", 3, () => add("new-1", "new-2"))).toEqual([...titles].reverse());
    // Oldest first: they come at the end.
    expect(await pageThrough(filter, "CREATED_AT_ASC", 3, () => add("new-3"))).toEqual([
      ...titles,
      "new-1",
      "new-2",
      "new-3",
    ]);
    // By title: one added before the cursor's place is not shown, one after it is, nothing twice.
    const byTitle = await pageThrough(filter, "TITLE_ASC", 3, () => add("aardvark", "zulu"));
    expect(byTitle).toEqual([
      "alpha",
      "bravo",
      "charlie",
      "delta",
      "echo",
      "foxtrot",
      "golf",
      "new-1",
      "new-2",
      "new-3",
      "zulu",
    ]);
    const byTitleDesc = await pageThrough(filter, "TITLE_DESC", 4, async () => {});
    expect(byTitleDesc).toEqual([
      "zulu",
      "new-3",
      "new-2",
      "new-1",
      "golf",
      "foxtrot",
      "echo",
      "delta",
      "charlie",
      "bravo",
      "alpha",
      "aardvark",
    ]);
    // Backwards (last/before, as the console's "previous" does): the same order, read from its end.
    expect(await pageThrough(filter, "TITLE_DESC", 5, async () => {}, "backward")).toEqual(byTitleDesc);
    expect(added).toBe(5);

    // Equal sort keys are ordered by id, so a page boundary between them loses none.
    for (let i = 0; i < 5; i++) await createUpload(t, "same title", { tags: ["ties"] });
    const tied = await pageThrough({ tags: ["ties"] }, "TITLE_ASC", 2, async () => {});
    expect(tied).toHaveLength(5);
    const tiedIds = [];
    let after: string | null = null;
    for (;;) {
      const res: Found = await t.gql(FIND, { filter: { tags: ["ties"] }, orderBy: "TITLE_ASC", first: 2, after });
      tiedIds.push(...res.data.videos.edges.map((e) => e.node.id));
      if (!res.data.videos.pageInfo.hasNextPage) break;
      after = res.data.videos.pageInfo.endCursor;
    }
    expect(new Set(tiedIds).size).toBe(5);
    expect(tiedIds).toEqual([...tiedIds].sort());
  });
});

describe("a title search that would read every title is stopped", () => {
  let t: TestApp;
  const TIMEOUT_MS = 10;

  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { VIDEO_SEARCH_TIMEOUT_MS: String(TIMEOUT_MS) } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers SEARCH_TIMEOUT naming titleContains when every title holds the text's trigrams and none the text", async () => {
    const db = t.app.services.db;
    const key = `Bearer ${await tenantKeySecret(db, "tenant-episodes", ["videos:read"], "episodes")}`;
    const tenant = await db.tenant.findUniqueOrThrow({ where: { name: "tenant-episodes" } });
    // Every title holds "episode": the trigram index finds them all, and each must be read to see
    // that none holds "episode-" (the newest thousand, probed first, do not).
    await db.$executeRaw`
      INSERT INTO "Video" ("id", "tenantId", "title", "createdAt", "updatedAt")
      SELECT gen_random_uuid(), ${tenant.id}::uuid, 'Episode ' || i, timestamp '2026-01-01' + i * interval '1 second', now()
      FROM generate_series(1, 60000) AS i`;
    await db.$executeRawUnsafe(`ANALYZE "Video"`);
    const started = performance.now();
    const res = await t.gql(FIND, { filter: { titleContains: "episode-" }, first: 20 }, key);
    const tookMs = performance.now() - started;
    expect(res.data?.videos ?? null).toBeNull();
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: "SEARCH_TIMEOUT", field: "titleContains" });
    expect(res.errors?.[0]?.message).toContain(`longer than ${TIMEOUT_MS} ms`);
    // Stopped, not run to the end: reading 60,000 titles takes tens of times the timeout.
    expect(tookMs).toBeLessThan(5000);
    // The listing without the text answers at once.
    const listed = await t.gql(FIND, { first: 2 }, key);
    expect(listed.data.videos.edges.map((e) => e.node.title)).toEqual(["Episode 60000", "Episode 59999"]);
  });
});
