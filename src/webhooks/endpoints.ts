import { randomBytes } from "node:crypto";
import { type Db, lockTenant } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { WebhookDelivery, WebhookEndpoint } from "../generated/prisma/client.ts";
import { hostAddressProblem } from "../http/outbound-url.ts";
import { isUuid } from "../ids.ts";
import { checkWebhookUrl } from "./endpoint-url.ts";
import type { WebhookEventType } from "./events.ts";

/** What managing a tenant's endpoints needs: the rows, the settings, and the deliverer to wake. */
export interface WebhookEndpointDeps {
  db: Db;
  webhooks: {
    allowPrivateUrls: boolean;
    retryHours: number;
    maxEndpointsPerTenant: number;
    /** Wakes the deliverer (a resend). */
    kick(): void;
  };
}

/**
 * A refused endpoint URL, with why and, for http or a private address, the setting that allows them
 * (the console shows this message as it is).
 */
function refusedUrl(reason: string, hintSetting: boolean): ValidationError {
  const why = hintSetting
    ? "; webhooks go only to https URLs at public addresses, so that signed events are not read on the way and " +
      "are not sent into the service's own network. For development, the operator can allow http and private " +
      "addresses with WEBHOOK_ALLOW_PRIVATE_URLS=true"
    : "";
  return new ValidationError("url", `Not usable for webhooks: ${reason}${why}`);
}

/**
 * Registers `url` for tenant `tenantId`'s events (`events` empty or absent: every type) with a new
 * signing secret, returned once. The URL must be usable now (form and address); the tenant's
 * endpoints are counted under its lock, so two registrations cannot both pass the limit.
 */
export async function createWebhookEndpoint(
  deps: WebhookEndpointDeps,
  tenantId: string,
  input: { url: string; events?: readonly WebhookEventType[] | null },
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  const { allowPrivateUrls, maxEndpointsPerTenant: max } = deps.webhooks;
  const strict = !allowPrivateUrls;
  const url = checkWebhookUrl(input.url, allowPrivateUrls);
  if (typeof url === "string") throw refusedUrl(url, strict && URL.parse(input.url)?.protocol === "http:");
  const unreachable = await hostAddressProblem(url, allowPrivateUrls);
  if (unreachable) throw refusedUrl(unreachable, strict);
  const secret = `whsec_${randomBytes(24).toString("base64url")}`;
  const endpoint = await deps.db.$transaction(async (tx) => {
    await lockTenant(tx, tenantId);
    if ((await tx.webhookEndpoint.count({ where: { tenantId } })) >= max) return null;
    const events = [...new Set(input.events ?? [])];
    return tx.webhookEndpoint.create({ data: { tenantId, url: url.href, secret, events } });
  });
  if (!endpoint) {
    throw new ValidationError("input", `A tenant has at most ${max} webhook endpoints; delete one first`);
  }
  return { endpoint, secret };
}

/** Deletes tenant `tenantId`'s endpoint `id` with its deliveries; another tenant's is "not found". */
export async function deleteWebhookEndpoint(db: Db, tenantId: string, id: string): Promise<string> {
  const endpoint = isUuid(id) ? await db.webhookEndpoint.findFirst({ where: { id, tenantId } }) : null;
  if (!endpoint) throw new NotFoundError("webhook endpoint", id);
  await db.webhookEndpoint.delete({ where: { id: endpoint.id } });
  return endpoint.id;
}

/**
 * Sends tenant `tenantId`'s delivery `id` again now (same event id), whatever its status: its
 * retries start over for WEBHOOK_RETRY_HOURS.
 */
export async function resendWebhookDelivery(
  deps: WebhookEndpointDeps,
  tenantId: string,
  id: string,
): Promise<WebhookDelivery> {
  const found = isUuid(id) ? await deps.db.webhookDelivery.findFirst({ where: { id, endpoint: { tenantId } } }) : null;
  if (!found) throw new NotFoundError("webhook delivery", id);
  const delivery = await deps.db.webhookDelivery.update({
    where: { id: found.id },
    data: {
      status: "PENDING",
      nextAttemptAt: new Date(),
      giveUpAt: new Date(Date.now() + deps.webhooks.retryHours * 3600_000),
    },
  });
  deps.webhooks.kick();
  return delivery;
}
