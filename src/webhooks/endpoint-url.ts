import { checkOutboundUrl } from "../http/outbound-url.ts";

const WEBHOOK_URL_MAX_LENGTH = 2000;

/**
 * The form of a webhook endpoint's URL (https, or http where private URLs are allowed; no
 * credentials; at most 2000 characters): the parsed URL, or why it is refused. Checked when an
 * endpoint is registered and again at each delivery, since the settings may have changed since.
 */
export function checkWebhookUrl(raw: string, allowPrivateUrls: boolean): URL | string {
  return checkOutboundUrl(raw, { allowHttp: allowPrivateUrls, maxLength: WEBHOOK_URL_MAX_LENGTH });
}
