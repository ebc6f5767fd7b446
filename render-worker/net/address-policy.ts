import { whyNotPublic } from "../../src/shared/public-address.ts";

/** Returns why the worker must not connect to `address`, or null when it is a public unicast address. */
export type AddressPolicy = (address: string) => string | null;

/**
 * Only public unicast addresses, by the rules the API's webhook guard uses too
 * (src/shared/public-address.ts): cloud metadata (169.254.169.254, link-local) and every IPv6
 * form that can lead to a private IPv4 network are refused.
 */
export const publicAddressesOnly: AddressPolicy = (address) => {
  const why = whyNotPublic(address);
  return why === null ? null : `${address} is ${why}`;
};

/** The test-only setting `allowPrivateAddresses`: any address. */
export const anyAddress: AddressPolicy = () => null;
