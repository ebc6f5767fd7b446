import type { Db } from "../db/client.ts";
import { ValidationError } from "../errors.ts";
import { Prisma } from "../generated/prisma/client.ts";
import type { VideoSource, VideoStatus } from "../generated/prisma/enums.ts";
import { CMS_LIMITS, validExternalId, validMetadata, validTags } from "./cms-fields.ts";

/** What a tenant's videos may be found by; every condition given must hold. */
export interface VideoFilter {
  /** A part of the title, any case. */
  titleContains?: string | null;
  /** Every one of these tags. */
  tags?: readonly string[] | null;
  /** Every one of these keys with this value. */
  metadata?: readonly { key: string; value: string }[] | null;
  externalId?: string | null;
  status?: VideoStatus | null;
  source?: VideoSource | null;
  /** Created at or after. */
  createdFrom?: Date | null;
  /** Created before. */
  createdBefore?: Date | null;
}

export type VideoOrder = "CREATED_AT_DESC" | "CREATED_AT_ASC" | "TITLE_ASC" | "TITLE_DESC";

/** A page: `first` after a cursor, or `last` before one. */
export interface PageRequest {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

/** Where a row sits in an order: its sort key and its id (the tie-break), as a cursor carries them. */
interface Position {
  key: string;
  id: string;
}

const CURSOR_VERSION = "v1";

/** The opaque cursor of a row in `order`: base64url of JSON, bound to the order. */
export function videoCursor(order: VideoOrder, row: { id: string; title: string; createdAt: Date }): string {
  const key = order.startsWith("TITLE") ? row.title : row.createdAt.toISOString();
  return Buffer.from(JSON.stringify([CURSOR_VERSION, order, key, row.id])).toString("base64url");
}

const UUID_LENGTH = 36;
function isUuidText(text: string): boolean {
  if (text.length !== UUID_LENGTH) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const dash = i === 8 || i === 13 || i === 18 || i === 23;
    const hex = (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
    if (dash ? c !== 45 : !hex) return false;
  }
  return true;
}

/** A cursor this API made for `order`; anything else is a ValidationError naming `field`. */
function positionOf(cursor: string, order: VideoOrder, field: string): Position {
  const refused = () =>
    new ValidationError(field, `Not a cursor of this list in the order ${order}: use a cursor it returned`);
  // A cursor holds a title (at most 300 characters) and an id: anything much longer is not one.
  if (cursor.length > 2048) throw refused();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw refused();
  }
  if (!Array.isArray(parsed) || parsed.length !== 4) throw refused();
  const [version, cursorOrder, key, id] = parsed as unknown[];
  if (version !== CURSOR_VERSION || cursorOrder !== order || typeof key !== "string" || typeof id !== "string") {
    throw refused();
  }
  if (!isUuidText(id)) throw refused();
  if (!order.startsWith("TITLE") && Number.isNaN(new Date(key).getTime())) throw refused();
  return { key, id };
}

/** `date` as the columns hold it: `timestamp(3)` without a time zone, in UTC (Prisma's DateTime). */
function utcTimestamp(date: Date): Prisma.Sql {
  return Prisma.sql`${date.toISOString().slice(0, -1)}::timestamp(3)`;
}

/** `text` for a LIKE pattern that matches it literally: `\`, `%` and `_` escaped with `\`. */
function escapeLike(text: string): string {
  let out = "";
  for (const ch of text) out += ch === "\\" || ch === "%" || ch === "_" ? `\\${ch}` : ch;
  return out;
}

/** Letters and digits: what the trigram index makes trigrams of. */
function isWordChar(ch: string): boolean {
  const code = ch.charCodeAt(0);
  if (code < 128) return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
  // One code point, never a pattern over the tenant's text.
  return /^[\p{L}\p{N}]$/u.test(ch);
}

/**
 * The title text: 1 to titleSearchLength characters with a run of at least 3 letters or digits (the
 * trigram index finds nothing shorter, so anything less would read every title of the tenant).
 */
function validTitleSearch(title: string): string {
  if (title.length === 0 || title.length > CMS_LIMITS.titleSearchLength) {
    throw new ValidationError(
      "titleContains",
      `titleContains has 1 to ${CMS_LIMITS.titleSearchLength} characters (the limit)`,
    );
  }
  for (let i = 0; i < title.length; i++) {
    const code = title.charCodeAt(i);
    if (code < 32 || (code >= 127 && code <= 159)) {
      throw new ValidationError("titleContains", "titleContains must not contain control characters");
    }
  }
  if (!title.isWellFormed()) throw new ValidationError("titleContains", "titleContains must be well-formed Unicode");
  let run = 0;
  let longest = 0;
  for (const ch of title) {
    run = isWordChar(ch) ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  if (longest < MIN_TITLE_WORD) {
    throw new ValidationError(
      "titleContains",
      `titleContains needs at least ${MIN_TITLE_WORD} letters or digits in a row (the limit: shorter text cannot be found in the index)`,
    );
  }
  return title;
}

const MIN_TITLE_WORD = 3;

/** The filter's conditions, checked (lengths first), as SQL, but the title's; always within `tenantId`. */
function conditions(tenantId: string, filter: VideoFilter): { where: Prisma.Sql[]; title: Prisma.Sql | null } {
  const where: Prisma.Sql[] = [Prisma.sql`"tenantId" = ${tenantId}::uuid`];
  const text = filter.titleContains;
  const title =
    text === null || text === undefined
      ? null
      : Prisma.sql`"title" ILIKE ${`%${escapeLike(validTitleSearch(text))}%`} ESCAPE '\\'`;
  const tags = validTags(filter.tags ?? null, "tags");
  if (tags.length > 0) where.push(Prisma.sql`"tags" @> ${tags}::text[]`);
  const metadata = validMetadata(filter.metadata ?? null);
  if (Object.keys(metadata).length > 0) where.push(Prisma.sql`"metadata" @> ${JSON.stringify(metadata)}::jsonb`);
  const externalId = validExternalId(filter.externalId ?? null);
  if (externalId !== null) where.push(Prisma.sql`"externalId" = ${externalId}`);
  if (filter.status) where.push(Prisma.sql`"status" = ${filter.status}::"VideoStatus"`);
  if (filter.source) where.push(Prisma.sql`"source" = ${filter.source}::"VideoSource"`);
  if (filter.createdFrom) where.push(Prisma.sql`"createdAt" >= ${utcTimestamp(filter.createdFrom)}`);
  if (filter.createdBefore) where.push(Prisma.sql`"createdAt" < ${utcTimestamp(filter.createdBefore)}`);
  return { where, title };
}

/**
 * Rows a title search first reads in the list's order before it asks the trigram index. Postgres
 * cannot estimate how many titles hold a text: it guesses few, and for a common word ("jazz" in one
 * title of 17) read tens of thousands through the index, 130 ms at a million videos, where the
 * newest thousand already hold a page.
 */
const TITLE_PROBE_ROWS = 1000;

/**
 * Rate-limit points (RATE_LIMIT_MUTATIONS_PER_MINUTE's budget) of a `videos` query with a title
 * search: at the defaults, 60 searches a minute, so a credential's worst searches cost the database
 * at most 60 × VIDEO_SEARCH_TIMEOUT_MS (30 s) a minute.
 */
export const TITLE_SEARCH_RATE_POINTS = 5;

/**
 * A title search whose statement ran past its timeout and was canceled. One whose text's trigrams
 * every title holds but none matches whole (titles "Episode 1" … "Episode 200000", text "episode-")
 * reads and rechecks every title of the tenant: 0.9 s at a million (docs/performance.md), growing with them.
 */
export class SearchTimeoutError extends Error {
  readonly field = "titleContains";
  constructor(timeoutMs: number) {
    super(
      `The title search took longer than ${timeoutMs} ms and was stopped: the text is in too many ` +
        "titles to check them all; give more of the title, or narrow the search (createdFrom, tags, status)",
    );
  }
}

/** Whether Prisma's error is Postgres canceling the statement (57014: statement_timeout). */
function isStatementTimeout(err: unknown): boolean {
  const cause = (err as { meta?: { driverAdapterError?: { cause?: { originalCode?: string } } } } | null)?.meta
    ?.driverAdapterError?.cause;
  return err instanceof Prisma.PrismaClientKnownRequestError && cause?.originalCode === "57014";
}

/** The page size asked for: 1 to MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE when none is given. */
function pageSize(page: PageRequest): { size: number; backward: boolean } {
  if (page.first != null && page.last != null) throw new ValidationError("first", "Give first or last, not both");
  const backward = page.last != null || (page.before != null && page.first == null);
  const asked = backward ? page.last : page.first;
  const size = asked ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
    throw new ValidationError(backward ? "last" : "first", `A page has 0 to ${MAX_PAGE_SIZE} videos`);
  }
  return { size, backward };
}

export interface VideoPage {
  /** The ids of the page's videos, in order. */
  ids: string[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
}

/**
 * One page of a tenant's videos that match `filter`, in `order`, by keyset: a cursor is the last
 * row's (sort key, id), so a page starts where the last one ended whatever was added or deleted
 * meanwhile (a video added before the cursor's place is not shown on later pages; none is shown
 * twice). Every order has its index (prisma/schema.prisma), and so do the filters that need one.
 */
export async function findVideoPage(
  db: Pick<Db, "$queryRaw" | "$transaction">,
  tenantId: string,
  filter: VideoFilter,
  order: VideoOrder,
  page: PageRequest,
  /** How long a title search's statement may run (VIDEO_SEARCH_TIMEOUT_MS). */
  titleTimeoutMs: number,
): Promise<VideoPage> {
  const { size, backward } = pageSize(page);
  const { where, title } = conditions(tenantId, filter);
  const cursor = backward ? page.before : page.after;
  const position = cursor == null ? null : positionOf(cursor, order, backward ? "before" : "after");
  const byTitle = order.startsWith("TITLE");
  // Walking the order forwards or, for `last`/`before`, backwards from its far end.
  const descending = order.endsWith("DESC") !== backward;
  const column = byTitle ? Prisma.sql`"title"` : Prisma.sql`"createdAt"`;
  if (position) {
    const key = byTitle ? Prisma.sql`${position.key}` : utcTimestamp(new Date(position.key));
    where.push(
      descending
        ? Prisma.sql`(${column}, "id") < (${key}, ${position.id}::uuid)`
        : Prisma.sql`(${column}, "id") > (${key}, ${position.id}::uuid)`,
    );
  }
  if (size === 0) return { ids: [], hasNextPage: false, hasPreviousPage: false };
  const direction = descending ? Prisma.sql`DESC` : Prisma.sql`ASC`;
  const orderBy = Prisma.sql`${column} ${direction}, "id" ${direction}`;
  const rows = title
    ? await titleSearch(db, where, title, orderBy, size, titleTimeoutMs)
    : await db.$queryRaw<{ id: string }[]>`
        SELECT "id" FROM "Video" WHERE ${Prisma.join(where, " AND ")} ORDER BY ${orderBy} LIMIT ${size + 1}`;
  const more = rows.length > size;
  const ids = rows.slice(0, size).map((r) => r.id);
  if (backward) ids.reverse();
  return backward
    ? { ids, hasPreviousPage: more, hasNextPage: page.before != null }
    : { ids, hasNextPage: more, hasPreviousPage: page.after != null };
}

/**
 * A page of a title search: the newest TITLE_PROBE_ROWS rows in the list's order first, then, when
 * they do not hold a page, the trigram index; each statement canceled past `timeoutMs`.
 */
async function titleSearch(
  db: Pick<Db, "$transaction">,
  where: Prisma.Sql[],
  title: Prisma.Sql,
  orderBy: Prisma.Sql,
  size: number,
  timeoutMs: number,
): Promise<{ id: string }[]> {
  try {
    return await db.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`SET LOCAL statement_timeout = ${Math.round(timeoutMs)}`);
      const [probe] = await tx.$queryRaw<{ probed: bigint; ids: string[] }[]>`
        WITH "next" AS MATERIALIZED (
          SELECT "id", "title", "createdAt" FROM "Video" WHERE ${Prisma.join(where, " AND ")}
          ORDER BY ${orderBy} LIMIT ${TITLE_PROBE_ROWS})
        SELECT (SELECT count(*) FROM "next") AS "probed",
          array(SELECT "id"::text FROM "next" WHERE ${title} ORDER BY ${orderBy} LIMIT ${size + 1}) AS "ids"`;
      // A full page, or every row the other conditions leave: the probe's answer is the whole answer.
      if (probe && (probe.ids.length > size || Number(probe.probed) < TITLE_PROBE_ROWS)) {
        return probe.ids.map((id) => ({ id }));
      }
      return tx.$queryRaw<{ id: string }[]>`
        SELECT "id" FROM "Video" WHERE ${Prisma.join([...where, title], " AND ")} ORDER BY ${orderBy} LIMIT ${size + 1}`;
    });
  } catch (err) {
    if (isStatementTimeout(err)) throw new SearchTimeoutError(timeoutMs);
    throw err;
  }
}
