import { useState } from "preact/hooks";

/**
 * The signed-in credential, kept in this tab's sessionStorage only (gone when the tab closes).
 * The API's GraphiQL page reads the same entry (src/http/graphiql.ts).
 */
const CREDENTIAL_KEY = "videograph.authorization";

export function credential(): string | null {
  return sessionStorage.getItem(CREDENTIAL_KEY);
}

/** An API key (`vg_…`) or a JWT, as pasted: see `credentialFromPaste`. */
export function saveCredential(secret: string): void {
  sessionStorage.setItem(CREDENTIAL_KEY, `Bearer ${credentialFromPaste(secret)}`);
}

/**
 * The key or JWT in what a person pastes: the bare secret, `Bearer …`, or the line `npm start`
 * prints (`export VIDEOGRAPH_KEY=vg_…`, with or without `export` and quotes). String steps, no
 * regular expression: the text is whatever was pasted.
 */
function credentialFromPaste(text: string): string {
  let value = text.trim();
  const startsWith = (prefix: string) => value.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase();
  const drop = (prefix: string) => {
    if (startsWith(prefix)) value = value.slice(prefix.length).trimStart();
  };
  drop("export ");
  drop("VIDEOGRAPH_KEY=");
  const quote = value[0];
  if ((quote === '"' || quote === "'") && value.length > 1 && value.endsWith(quote)) value = value.slice(1, -1).trim();
  drop("Bearer ");
  return value;
}

export function forgetCredential(): void {
  sessionStorage.removeItem(CREDENTIAL_KEY);
}

/** What kind of credential it is, for the header. */
export function credentialKind(): string {
  const value = credential() ?? "";
  return value.startsWith("Bearer vg_") ? "API key" : "viewer JWT";
}

/**
 * A form's fields kept in this tab's sessionStorage as they are typed: leaving the page (to follow
 * a render that then fails) and coming back finds them as they were, to edit and send again.
 */
export function useDraft<T extends object>(form: string, initial: T): [T, (changes: Partial<T>) => void] {
  const key = `videograph.draft.${form}`;
  const [draft, setDraft] = useState<T>(() => {
    try {
      return { ...initial, ...JSON.parse(sessionStorage.getItem(key) ?? "{}") };
    } catch {
      return initial;
    }
  });
  const change = (changes: Partial<T>) =>
    setDraft((current) => {
      const next = { ...current, ...changes };
      sessionStorage.setItem(key, JSON.stringify(next));
      return next;
    });
  return [draft, change];
}
