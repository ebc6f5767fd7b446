import ipaddr from "ipaddr.js";

/** Why an address may not be fetched, in words for the job's error ("a private address"). */
const RANGE_WORDS: Record<string, string> = {
  private: "a private address",
  loopback: "a loopback address",
  linkLocal: "a link-local address",
  uniqueLocal: "a unique-local address",
  unspecified: "an unspecified address",
  multicast: "a multicast address",
  broadcast: "a broadcast address",
  carrierGradeNat: "a carrier-grade NAT address",
  reserved: "a reserved address",
  ipv4Mapped: "an IPv4-mapped address",
  rfc6052: "a NAT64 address",
  rfc6145: "an IPv4-translated address",
  "6to4": "a 6to4 address",
  teredo: "a Teredo address",
};

/** Returns why the worker must not connect to `address`, or null when it is a public unicast address. */
export type AddressPolicy = (address: string) => string | null;

/**
 * Only public unicast addresses: everything ipaddr.js classifies otherwise is refused, including
 * cloud metadata (169.254.169.254, link-local) and IPv6 forms that embed an IPv4 address
 * (IPv4-mapped `::ffff:10.0.0.1` is judged as the IPv4 address it maps; NAT64, 6to4 and Teredo
 * are refused outright, since they can reach private IPv4 networks).
 */
export const publicAddressesOnly: AddressPolicy = (address) => {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  if (range === "unicast") return null;
  return `${address} is ${RANGE_WORDS[range] ?? `in the ${range} range`}`;
};

/** The test-only setting `allowPrivateAddresses`: any address. */
export const anyAddress: AddressPolicy = () => null;
