import type { Db } from "../db/client.ts";
import { ValidationError } from "../errors.ts";
import type { Prisma, Video } from "../generated/prisma/client.ts";
import { validPlainText } from "../plain-text.ts";

/**
 * What a CMS may store on a video, and how much: every limit in one place (docs/api-guide.md,
 * "CMS data"). Lengths are in UTF-16 code units (JavaScript's `length`), checked before anything
 * else reads the text; every check is a plain loop, never a regular expression over tenant text.
 */
export const CMS_LIMITS = {
  descriptionLength: 5000,
  metadataKeys: 50,
  metadataKeyLength: 64,
  metadataValueLength: 1024,
  /** Keys and values together, as UTF-8. */
  metadataTotalBytes: 16 * 1024,
  tags: 20,
  tagLength: 64,
  externalIdLength: 128,
  /** The search's title text. */
  titleSearchLength: 200,
} as const;

/** A video's metadata: string keys to string values. */
export type VideoMetadata = Record<string, string>;

/** The fields a CMS sets on a video, as the row holds them. */
export type CmsFields = Pick<Video, "description" | "externalId" | "tags"> & { metadata: VideoMetadata };

/** Characters a metadata key may have: letters, digits, `_ - . :`. */
function isKeyChar(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 95 || // _
    code === 45 || // -
    code === 46 || // .
    code === 58 // :
  );
}

/** A description: at most CMS_LIMITS.descriptionLength characters, line breaks allowed; "" or null is none. */
export function validDescription(raw: string | null): string | null {
  if (raw === null) return null;
  if (raw.length > CMS_LIMITS.descriptionLength) {
    throw new ValidationError(
      "description",
      `description is longer than ${CMS_LIMITS.descriptionLength} characters (the limit)`,
    );
  }
  const text = validPlainText("description", raw, true).trim();
  return text === "" ? null : text;
}

/**
 * Metadata from its entries: at most CMS_LIMITS.metadataKeys keys (each once) of 1 to
 * metadataKeyLength letters, digits or `_ - . :`, values of at most metadataValueLength
 * characters, metadataTotalBytes in all.
 */
export function validMetadata(entries: readonly { key: string; value: string }[] | null): VideoMetadata {
  if (entries === null) return {};
  if (entries.length > CMS_LIMITS.metadataKeys) {
    throw new ValidationError("metadata", `metadata has more than ${CMS_LIMITS.metadataKeys} keys (the limit)`);
  }
  let total = 0;
  for (const { key, value } of entries) {
    if (key.length === 0 || key.length > CMS_LIMITS.metadataKeyLength) {
      throw new ValidationError(
        "metadata",
        `A metadata key has 1 to ${CMS_LIMITS.metadataKeyLength} characters (the limit)`,
      );
    }
    if (value.length > CMS_LIMITS.metadataValueLength) {
      throw new ValidationError(
        "metadata",
        `The value of metadata key ${JSON.stringify(key)} is longer than ${CMS_LIMITS.metadataValueLength} characters (the limit)`,
      );
    }
    total += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (total > CMS_LIMITS.metadataTotalBytes) {
    throw new ValidationError(
      "metadata",
      `metadata is larger than ${CMS_LIMITS.metadataTotalBytes} bytes of keys and values (the limit)`,
    );
  }
  const metadata: VideoMetadata = Object.create(null);
  for (const { key, value } of entries) {
    for (let i = 0; i < key.length; i++) {
      if (!isKeyChar(key.charCodeAt(i))) {
        throw new ValidationError(
          "metadata",
          `Metadata keys have only letters, digits and _ - . : (${JSON.stringify(key)} does not)`,
        );
      }
    }
    if (Object.hasOwn(metadata, key)) throw new ValidationError("metadata", `Metadata key "${key}" is given twice`);
    // JSON libraries (Prisma's included) drop it silently: refused rather than lost.
    if (key === "__proto__") throw new ValidationError("metadata", "The metadata key __proto__ is reserved");
    metadata[key] = validPlainText("metadata", value);
  }
  return { ...metadata };
}

/** A tag as it is stored and matched: trimmed, lower case, NFC. */
function normalTag(raw: string): string {
  return raw.trim().normalize("NFC").toLowerCase();
}

/** Tags: at most CMS_LIMITS.tags of 1 to tagLength characters, normalized and deduplicated (first order kept). */
export function validTags(raw: readonly string[] | null, field = "tags"): string[] {
  if (raw === null) return [];
  if (raw.length > CMS_LIMITS.tags) {
    throw new ValidationError(field, `At most ${CMS_LIMITS.tags} tags (the limit)`);
  }
  for (const tag of raw) {
    if (tag.length > CMS_LIMITS.tagLength) {
      throw new ValidationError(field, `A tag is longer than ${CMS_LIMITS.tagLength} characters (the limit)`);
    }
  }
  const tags: string[] = [];
  for (const tag of raw) {
    const normal = normalTag(validPlainText(field, tag, false, true));
    if (normal === "" || normal.length > CMS_LIMITS.tagLength) {
      throw new ValidationError(field, `A tag has 1 to ${CMS_LIMITS.tagLength} characters besides spaces`);
    }
    if (!tags.includes(normal)) tags.push(normal);
  }
  return tags;
}

/** A CMS's id for a video: 1 to CMS_LIMITS.externalIdLength characters, kept exactly as given; null is none. */
export function validExternalId(raw: string | null, field = "externalId"): string | null {
  if (raw === null) return null;
  if (raw.length === 0 || raw.length > CMS_LIMITS.externalIdLength) {
    throw new ValidationError(field, `An externalId has 1 to ${CMS_LIMITS.externalIdLength} characters (the limit)`);
  }
  return validPlainText(field, raw);
}

/** The metadata a row holds, or none when it holds something else. */
export function storedMetadata(value: Prisma.JsonValue): VideoMetadata {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
  // fromEntries defines each key, so a key named __proto__ stays a key (an assignment would not).
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
  );
}

const MAX_CACHED_VERSIONS = 10_000;
/** Per database client (one per API instance): the CMS fields of a video version, `${id}@${updatedAt}`. */
const cachesByDb = new WeakMap<object, Map<string, Promise<CmsFields | null>>>();

/**
 * The CMS fields of `video`: from the row itself, or for an event's snapshot (which leaves them out,
 * so that a NOTIFY does not carry up to 16 KiB of metadata on every progress event) from the
 * database, read once per API instance per version of the row (`updatedAt` changes with every
 * update) however many subscribers and events ask.
 */
export function cmsFieldsOf(
  db: Pick<Db, "video">,
  video: { id: string; updatedAt: Date | string } & Partial<
    Pick<Video, "description" | "externalId" | "tags" | "metadata">
  >,
): Promise<CmsFields | null> {
  if (video.metadata !== undefined && video.tags !== undefined) {
    return Promise.resolve({
      description: video.description ?? null,
      externalId: video.externalId ?? null,
      tags: video.tags,
      metadata: storedMetadata(video.metadata),
    });
  }
  let cache = cachesByDb.get(db);
  if (!cache) {
    cache = new Map();
    cachesByDb.set(db, cache);
  }
  const key = `${video.id}@${new Date(video.updatedAt).toISOString()}`;
  let read = cache.get(key);
  if (!read) {
    if (cache.size >= MAX_CACHED_VERSIONS) cache.clear();
    read = db.video
      .findUnique({
        where: { id: video.id },
        select: { description: true, externalId: true, tags: true, metadata: true },
      })
      .then((row) => row && { ...row, metadata: storedMetadata(row.metadata) });
    read.catch(() => cache.delete(key));
    cache.set(key, read);
  }
  return read;
}
