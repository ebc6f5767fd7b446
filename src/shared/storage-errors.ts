import { mkdir } from "node:fs/promises";
import path from "node:path";

/** File-system errors that say the disk or its quota is full or failing, not that one file is wrong. */
const FILE_SYSTEM_CODES = new Set(["ENOSPC", "EDQUOT", "EIO", "EROFS", "EMFILE", "ENFILE"]);
/** Network errors on the way to storage. */
const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
]);
/** S3 (and S3-compatible: Ceph RGW, MinIO) error codes for a full or overloaded store. */
const S3_CODES = new Set([
  "QuotaExceeded",
  "XMinioStorageFull",
  "InsufficientStorage",
  "SlowDown",
  "ServiceUnavailable",
  "InternalError",
  "RequestTimeout",
]);
/** GCS JSON API reasons (`errors[].reason`) for a project quota or an overloaded backend. */
const GCS_REASONS = new Set([
  "quotaExceeded",
  "rateLimitExceeded",
  "userRateLimitExceeded",
  "storageQuotaExceeded",
  "backendError",
]);

const FULL_CODES = new Set([
  "ENOSPC",
  "EDQUOT",
  "QuotaExceeded",
  "XMinioStorageFull",
  "InsufficientStorage",
  "quotaExceeded",
  "storageQuotaExceeded",
]);

/**
 * Storage as a whole could not take a file: a full disk or quota, an I/O error, an overloaded or
 * unreachable service. Nothing about the file or its rung is wrong, so the attempt fails and is
 * retried; no rung is given up for it.
 */
export class StorageUnavailableError extends Error {
  readonly retryable = true;
  /** True when storage is full (disk, quota), as opposed to failing or overloaded. */
  readonly full: boolean;
  constructor(cause: unknown, full: boolean, unreachable = false) {
    super(
      `${full ? "Storage is full" : "Storage is unavailable"}: ${
        // A network error names the store's address, which says nothing to a user: the cause keeps it.
        unreachable
          ? `the storage service could not be reached (${codesOf(cause as object).find((c) => NETWORK_CODES.has(c))})`
          : cause instanceof Error
            ? cause.message
            : String(cause)
      }`,
      { cause },
    );
    this.name = "StorageUnavailableError";
    this.full = full;
  }
}

/** The error's code as Node (`code`), the AWS SDK (`name`, `Code`) or GCS (`errors[].reason`) gives it. */
function codesOf(err: object): string[] {
  const e = err as { code?: unknown; name?: unknown; Code?: unknown; errors?: unknown };
  const codes = [e.code, e.name, e.Code].filter((c): c is string => typeof c === "string");
  if (Array.isArray(e.errors))
    for (const item of e.errors) if (typeof item?.reason === "string") codes.push(item.reason);
  return codes;
}

function httpStatusOf(err: object): number | null {
  const e = err as { code?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const status = e.$metadata?.httpStatusCode ?? e.code;
  return typeof status === "number" ? status : null;
}

/** The StorageUnavailableError `err` amounts to, or null when it may concern one file only. */
export function storageUnavailable(err: unknown): StorageUnavailableError | null {
  if (err instanceof StorageUnavailableError) return err;
  if (typeof err !== "object" || err === null) return null;
  const codes = codesOf(err);
  const status = httpStatusOf(err);
  const full = codes.some((c) => FULL_CODES.has(c)) || status === 507;
  const unavailable =
    full ||
    codes.some((c) => FILE_SYSTEM_CODES.has(c) || NETWORK_CODES.has(c) || S3_CODES.has(c) || GCS_REASONS.has(c)) ||
    status === 429 ||
    (status !== null && status >= 500);
  if (unavailable) return new StorageUnavailableError(err, full, !full && codes.some((c) => NETWORK_CODES.has(c)));
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err ? storageUnavailable(cause) : null;
}

/**
 * `mkdir -p` for a storage directory that says why it failed: Node's recursive mkdir answers
 * `ENOENT` when a read-only file system refused it, which reads as a missing object, not an outage.
 */
export async function makeStorageDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    // One level at a time, which reports the real refusal (EROFS, EACCES).
    const parent = path.dirname(dir);
    if (parent !== dir) await makeStorageDir(parent);
    await mkdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  }
}
