import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Webhook signatures, as Stripe-style receivers expect: `Signature: t={unix seconds},v1={hex}`
 * where v1 = HMAC-SHA256(secret, `${t}.${body}`). Receivers check the MAC over the raw body and
 * refuse a `t` outside their replay window. This file has no dependencies, so a CMS written in
 * TypeScript can copy it as it is.
 */
export function signWebhook(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `t=${timestamp},v1=${mac}`;
}

class WebhookSignatureError extends Error {
  constructor(reason: string) {
    super(`Webhook signature rejected: ${reason}`);
    this.name = "WebhookSignatureError";
  }
}

/**
 * Throws WebhookSignatureError unless `header` (the `Signature` header) signs `rawBody` with
 * `secret` within `toleranceSeconds` of now. Pass the body exactly as received, before parsing.
 */
export function verifyWebhookSignature(options: {
  secret: string;
  header: string | null | undefined;
  rawBody: string;
  toleranceSeconds?: number;
  now?: number;
}): void {
  const { secret, header, rawBody, toleranceSeconds = 300, now = Date.now() } = options;
  if (!header) throw new WebhookSignatureError("no Signature header");
  const parts = new Map<string, string[]>();
  for (const item of header.split(",")) {
    const [k, v] = item.split("=", 2).map((x) => x.trim());
    if (k && v) parts.set(k, [...(parts.get(k) ?? []), v]);
  }
  const t = Number(parts.get("t")?.[0]);
  const candidates = parts.get("v1") ?? [];
  if (!Number.isInteger(t) || candidates.length === 0) throw new WebhookSignatureError("malformed header");
  if (Math.abs(now / 1000 - t) > toleranceSeconds)
    throw new WebhookSignatureError("timestamp outside the replay window");
  const expected = Buffer.from(createHmac("sha256", secret).update(`${t}.${rawBody}`).digest("hex"));
  // Several v1 values are allowed, so a secret can be rotated without a gap.
  const ok = candidates.some((c) => c.length === expected.length && timingSafeEqual(Buffer.from(c), expected));
  if (!ok) throw new WebhookSignatureError("signature does not match");
}
