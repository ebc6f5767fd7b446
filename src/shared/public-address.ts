import ipaddr from "ipaddr.js";

/** Why an address is not public, in words for an error ("is a private address"). */
const RANGE_WORDS: Record<string, string> = {
  private: "a private address",
  loopback: "a loopback address",
  linkLocal: "a link-local address",
  uniqueLocal: "a unique-local address",
  deprecatedSiteLocal: "a site-local address",
  unspecified: "an unspecified address",
  multicast: "a multicast address",
  broadcast: "a broadcast address",
  carrierGradeNat: "a carrier-grade NAT address",
  reserved: "a reserved address",
  discard: "a discard-only address",
  rfc6052: "a NAT64 address",
  rfc6145: "an IPv4-translated address",
  "6to4": "a 6to4 address",
  teredo: "a Teredo address",
};

const IPV4_COMPATIBLE = ipaddr.IPv6.parse("::");

function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(":")) return null;
  // The WHATWG URL parser reads IPv6 text exactly; ipaddr.js 2.5 reads `::a.b.c.d` as `::ffff:a.b.c.d`.
  let canonical: string;
  try {
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  return ipaddr.IPv6.isValid(canonical) ? ipaddr.IPv6.parse(canonical) : null;
}

/**
 * Why the service must not connect to `address` for a tenant ("a loopback address"), or null for a public
 * unicast one; the API's and the worker's guards share it. `::ffff:a.b.c.d` is judged as its IPv4 address;
 * every other IPv6 form that embeds an IPv4 address (`::/96`, `::ffff:0:0/96`, NAT64, 6to4, Teredo) is refused,
 * since it can lead to a private IPv4 network.
 */
export function whyNotPublic(address: string): string | null {
  const parsed = parseAddress(address);
  if (!parsed) return "not an IP address";
  if (parsed.kind() === "ipv6") {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) return whyNotPublic(v6.toIPv4Address().toString());
    if (v6.range() === "unicast" && v6.match(IPV4_COMPATIBLE, 96)) return "an IPv4-compatible address";
  }
  const range = parsed.range();
  if (range === "unicast") return null;
  return RANGE_WORDS[range] ?? `in the ${range} range`;
}
