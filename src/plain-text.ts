import { ValidationError } from "./errors.ts";

/**
 * Whether `text` holds a C0 or C1 control character or DEL; `allowLineBreaks` lets tab, LF and CR
 * through (a description). A plain loop: tenant text is never given to a regular expression.
 */
export function hasControlCharacter(text: string, allowLineBreaks = false): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (allowLineBreaks && (code === 9 || code === 10 || code === 13)) continue;
    if (code < 32 || (code >= 127 && code <= 159)) return true;
  }
  return false;
}

/**
 * `text`, refused (naming `field`) when it holds a control character or a lone surrogate: Postgres
 * and JSON would refuse it later with a less useful error (a NUL fails the insert as an internal error).
 */
export function validPlainText(field: string, text: string, allowLineBreaks = false): string {
  if (hasControlCharacter(text, allowLineBreaks)) {
    throw new ValidationError(field, `${field} must not contain control characters`);
  }
  if (!text.isWellFormed()) throw new ValidationError(field, `${field} must be well-formed Unicode text`);
  return text;
}
