import { ValidationError } from "../errors.ts";
import { validPlainText } from "../plain-text.ts";

/** A video's title, trimmed: 1 to 300 characters of plain text (no control characters). */
export function validTitle(raw: string | null | undefined, fallback?: string): string {
  const title = (raw ?? fallback ?? "").trim();
  if (!title) throw new ValidationError("title", "A title is required");
  if (title.length > 300) throw new ValidationError("title", "The title is longer than 300 characters");
  return validPlainText("title", title);
}

/** A web page's origin, exactly as `new URL(raw).origin` prints it; null when none is given. */
export function validOrigin(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  let origin: string | null = null;
  try {
    origin = new URL(raw).origin;
  } catch {
    origin = null;
  }
  if (origin === null || origin === "null" || origin !== raw) {
    throw new ValidationError("origin", "Expected an origin such as https://cms.example.com");
  }
  return origin;
}

/** A client's key for "create this once": 1 to 200 characters of plain text; null when none is given. */
export function validIdempotencyKey(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  if (!raw || raw.length > 200) {
    throw new ValidationError("idempotencyKey", "An idempotency key has 1 to 200 characters");
  }
  return validPlainText("idempotencyKey", raw);
}
