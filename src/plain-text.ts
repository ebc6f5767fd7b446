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
