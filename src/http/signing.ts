import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/** HMAC-SHA256 signatures for URLs the API hands out (upload URLs), bound to a path and an expiry. */
export class UrlSigner {
  readonly #secret: Buffer;

  constructor(secret: string | Buffer) {
    this.#secret = Buffer.from(secret);
  }

  #mac(pathname: string, expires: number): string {
    return createHmac("sha256", this.#secret).update(`${pathname}\n${expires}`).digest("base64url");
  }

  sign(pathname: string, ttlSeconds: number, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + ttlSeconds;
    return `${pathname}?expires=${expires}&sig=${this.#mac(pathname, expires)}`;
  }

  /** Returns why the URL is not acceptable, or null when it is. */
  check(url: URL, now = Date.now()): string | null {
    const expires = Number(url.searchParams.get("expires"));
    const sig = url.searchParams.get("sig") ?? "";
    if (!Number.isInteger(expires) || !sig) return "missing signature";
    const expected = Buffer.from(this.#mac(url.pathname, expires));
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
