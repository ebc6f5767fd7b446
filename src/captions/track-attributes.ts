import { ValidationError } from "../errors.ts";

const MAX_LANGUAGE_LENGTH = 35;
const MAX_NAME_LENGTH = 100;

/**
 * The canonical form of a BCP-47 language tag (`EN-us` → `en-US`), as the master playlist's
 * LANGUAGE attribute carries it; anything else is a ValidationError on `field`.
 */
export function canonicalLanguage(tag: string, field: string): string {
  const trimmed = tag.trim();
  let canonical: string | undefined;
  try {
    if (trimmed.length <= MAX_LANGUAGE_LENGTH && /^[A-Za-z0-9-]+$/.test(trimmed)) {
      canonical = Intl.getCanonicalLocales(trimmed)[0];
    }
  } catch {
    canonical = undefined;
  }
  if (!canonical) {
    throw new ValidationError(
      field,
      `"${trimmed.slice(0, 40)}" is not a BCP-47 language tag such as "en", "de-CH" or "pt-BR"`,
    );
  }
  return canonical;
}

/** A track's name as players list it: 1–100 characters, one line, no double quote (the playlist quotes it). */
export function trackName(name: string, field: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > MAX_NAME_LENGTH) {
    throw new ValidationError(field, `A track's name has 1 to ${MAX_NAME_LENGTH} characters`);
  }
  if (/[\p{Cc}"]/u.test(trimmed) || !trimmed.isWellFormed()) {
    throw new ValidationError(field, "A track's name is one line of text without double quotes");
  }
  return trimmed;
}
