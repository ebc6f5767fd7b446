import { ValidationError } from "./errors.ts";

/**
 * Whether `text` holds a C0 or C1 control character or DEL; `allowLineBreaks` lets tab, LF and CR
 * through (a description). A plain loop: tenant text is never given to a regular expression.
 */
function hasControlCharacter(text: string, allowLineBreaks = false): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (allowLineBreaks && (code === 9 || code === 10 || code === 13)) continue;
    if (code < 32 || (code >= 127 && code <= 159)) return true;
  }
  return false;
}

/**
 * Whether `text` holds a character that changes how text displays without showing itself: the bidi
 * embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069: a title that reads
 * backwards), and the invisible ones (U+200B zero width space, U+2060 to U+2064, U+FEFF), with
 * `identifier` also the zero width joiners (U+200C, U+200D: a tag that displays as another). The
 * marks U+200E and U+200F stay: right-to-left text needs them. A plain loop, as above.
 */
function hasInvisibleFormatting(text: string, identifier = false): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code >= 0x202a && code <= 0x202e) || (code >= 0x2060 && code <= 0x2069) || code === 0x200b) return true;
    if (code === 0xfeff || (identifier && (code === 0x200c || code === 0x200d))) return true;
  }
  return false;
}

/**
 * `text`, refused (naming `field`) when it holds a control character or a lone surrogate (Postgres
 * and JSON would refuse it later with a less useful error: a NUL fails the insert as an internal
 * error), or formatting that makes it display as other text (`hasInvisibleFormatting`; an
 * `identifier`, such as a tag or a key's name, none of the joiners either).
 */
export function validPlainText(field: string, text: string, allowLineBreaks = false, identifier = false): string {
  if (hasControlCharacter(text, allowLineBreaks)) {
    throw new ValidationError(field, `${field} must not contain control characters`);
  }
  if (hasInvisibleFormatting(text, identifier)) {
    throw new ValidationError(
      field,
      `${field} must not contain invisible or direction-changing characters (bidi overrides, zero-width characters)`,
    );
  }
  if (!text.isWellFormed()) throw new ValidationError(field, `${field} must be well-formed Unicode text`);
  return text;
}
