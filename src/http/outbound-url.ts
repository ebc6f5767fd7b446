import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { lookup as dnsLookupAsync } from "node:dns/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isIP } from "node:net";
import { whyNotPublic } from "../shared/public-address.ts";

/** Addresses a webhook may reach: only public unicast ones, by the rules URL imports use too. */
export function isPublicAddress(address: string): boolean {
  return whyNotPublic(address) === null;
}

/**
 * Checks a URL the service will fetch or post to for a tenant (a webhook, an import) before it
 * is stored: https (or http where allowed), no credentials, at most `maxLength` characters.
 * Returns the parsed URL or why it is refused. Where it may connect is checked at connect time.
 */
export function checkOutboundUrl(raw: string, options: { allowHttp: boolean; maxLength: number }): URL | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a URL";
  }
  if (url.protocol !== "https:" && !(options.allowHttp && url.protocol === "http:")) {
    return options.allowHttp
      ? `use an http or https URL, not ${url.protocol}`
      : `use an https URL, not ${url.protocol}`;
  }
  if (url.username || url.password) return "credentials in the URL are not allowed";
  if (url.href.length > options.maxLength) return `longer than ${options.maxLength} characters`;
  return url;
}

/**
 * Why a URL's host may not be reached, for hosts that are IP literals (Node connects to those
 * without calling `lookup`), or null.
 */
export function literalAddressProblem(url: URL, allowPrivate: boolean): string | null {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (allowPrivate || !isIP(host)) return null;
  return isPublicAddress(host) ? null : `refused: ${host} is not a public address`;
}

// Never the addresses a name resolved to: a tenant would learn the operator's internal DNS.
function notPublicMessage(hostname: string): string {
  return `refused: ${hostname} is not a public address`;
}

/**
 * At registration, why a URL's host cannot be reached as things stand: an IP literal that is not
 * public, or a name that resolves now to no public address (what the guarded lookup would refuse
 * at delivery). A name that does not resolve, or not within `timeoutMs`, passes: it may by the
 * time of a delivery, which checks again.
 */
export async function hostAddressProblem(url: URL, allowPrivate: boolean, timeoutMs = 3000): Promise<string | null> {
  if (allowPrivate) return null;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host)) return literalAddressProblem(url, allowPrivate);
  const addresses = await Promise.race([
    dnsLookupAsync(host, { all: true }).catch(() => null),
    sleep(timeoutMs, null, { ref: false }),
  ]);
  if (!addresses?.length || addresses.some((a) => isPublicAddress(a.address))) return null;
  return notPublicMessage(host);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** The `code` of the error the guarded lookup fails with when it refuses every address. */
export const ADDRESS_NOT_PUBLIC = "EADDRNOTPUBLIC";

/**
 * A `lookup` for http.request that refuses private, loopback, link-local and other non-public
 * addresses after DNS resolution, so the connection goes to the address that was checked
 * (no DNS rebinding between check and connect).
 */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const allowed = allowPrivate ? list : list.filter((a) => isPublicAddress(a.address));
      if (allowed.length === 0) {
        const e = new Error(notPublicMessage(hostname)) as NodeJS.ErrnoException;
        e.code = ADDRESS_NOT_PUBLIC;
        return callback(e, []);
      }
      if ((options as { all?: boolean }).all) return callback(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}
