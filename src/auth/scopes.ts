/** What a credential may do. Each root field of the schema requires one of these. */
export const SCOPES = ["videos:read", "videos:write", "jobs:admin", "webhooks:admin", "keys:admin"] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** Parses `a,b c` into scopes; unknown names are an error, so a typo never grants less silently. */
export function parseScopes(raw: string | readonly string[]): Scope[] {
  const names = (typeof raw === "string" ? raw.split(/[\s,]+/) : [...raw]).filter(Boolean);
  const unknown = names.filter((n) => !isScope(n));
  if (unknown.length) throw new Error(`Unknown scope(s): ${unknown.join(", ")}; known: ${SCOPES.join(", ")}`);
  return [...new Set(names)] as Scope[];
}

/** Who is calling, once a credential checked out. */
export interface Principal {
  kind: "apiKey" | "jwt";
  tenantId: string;
  scopes: ReadonlySet<Scope>;
  /** The API key's id, or the JWT's `sub`. */
  subject: string;
  /** When the credential expires (epoch ms: the key's expiry, the JWT's `exp`), or null if it does not. */
  expiresAt: number | null;
  /** An API key that rotateApiKey replaced with a grace: it works until it expires, but manages no key. */
  replaced: boolean;
}
