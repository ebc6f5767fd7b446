import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * HMAC-SHA256 signatures for URLs the API hands out (upload URLs), bound to a path, an expiry
 * and every other query parameter (an upload's size limit and nonce).
 */
export class UrlSigner {
  readonly #secret: Buffer;

  constructor(secret: string | Buffer) {
    this.#secret = Buffer.from(secret);
  }

  #mac(pathname: string, expires: number, params: URLSearchParams): string {
    const bound = [...params]
      .filter(([k]) => k !== "expires" && k !== "sig")
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const canonical = bound.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
    return createHmac("sha256", this.#secret).update(`${pathname}\n${expires}\n${canonical}`).digest("base64url");
  }

  sign(pathname: string, ttlSeconds: number, params: Record<string, string> = {}, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + ttlSeconds;
    const query = new URLSearchParams(params);
    const mac = this.#mac(pathname, expires, query);
    query.set("expires", String(expires));
    query.set("sig", mac);
    return `${pathname}?${query}`;
  }

  /** Returns why the URL is not acceptable, or null when it is. */
  check(url: URL, now = Date.now()): string | null {
    const expires = Number(url.searchParams.get("expires"));
    const sig = url.searchParams.get("sig") ?? "";
    if (!Number.isInteger(expires) || !sig) return "missing signature";
    const expected = Buffer.from(this.#mac(url.pathname, expires, url.searchParams));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return "invalid signature";
    if (expires * 1000 < now) return "expired";
    return null;
  }
}

/** The configured secret, or one generated once and kept in the data dir so URLs survive restarts. */
export async function loadSigningSecret(configured: string | undefined, dataDir: string): Promise<string> {
  if (configured) return configured;
  const file = path.resolve(dataDir, ".signing-secret");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const secret = randomBytes(32).toString("base64url");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, secret, { mode: 0o600, flag: "wx" }).catch(async (e) => {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    });
    return (await readFile(file, "utf8")).trim();
  }
}
