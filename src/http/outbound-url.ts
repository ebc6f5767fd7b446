import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import ipaddr from "ipaddr.js";

/** Ranges a webhook may reach: only public unicast addresses. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed.range() === "unicast";
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
    return options.allowHttp ? `use an http or https URL, not ${url.protocol}` : `use an https URL, not ${url.protocol}`;
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
  if (allowPrivate || !ipaddr.isValid(host)) return null;
  return isPublicAddress(host) ? null : `refused: ${host} is not a public address`;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

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
        const e = new Error(`refused: ${hostname} resolves to ${list.map((a) => a.address).join(", ")}, not a public address`) as NodeJS.ErrnoException;
        e.code = "EADDRNOTPUBLIC";
        return callback(e, []);
      }
      if ((options as { all?: boolean }).all) return callback(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}
