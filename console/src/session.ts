/**
 * The signed-in credential, kept in this tab's sessionStorage only (gone when the tab closes).
 * The API's GraphiQL page reads the same entry (src/http/graphiql.ts).
 */
const CREDENTIAL_KEY = "videograph.authorization";

export function credential(): string | null {
  return sessionStorage.getItem(CREDENTIAL_KEY);
}

/** An API key (`vg_…`) or a JWT, with or without `Bearer `. */
export function saveCredential(secret: string): void {
  const value = secret.trim().replace(/^Bearer\s+/i, "");
  sessionStorage.setItem(CREDENTIAL_KEY, `Bearer ${value}`);
}

export function forgetCredential(): void {
  sessionStorage.removeItem(CREDENTIAL_KEY);
}

/** What kind of credential it is, for the header. */
export function credentialKind(): string {
  const value = credential() ?? "";
  return value.startsWith("Bearer vg_") ? "API key" : "viewer JWT";
}
