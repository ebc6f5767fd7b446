import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/** Longest X-Forwarded-For header read; a longer one is a forgery or a loop, and only its tail matters. */
const MAX_FORWARDED_CHARS = 4096;

/**
 * Who a request comes from, for per-client limits: the peer's address, or with `trustedProxyHops`
 * (TRUST_PROXY_HOPS) proxies in front, the address the outermost trusted proxy saw, read from the
 * right of X-Forwarded-For (entries further left are the client's to write). IPv6 addresses count
 * by their /64, which one subscriber usually holds whole; IPv4-mapped addresses count as IPv4.
 */
export function clientAddress(req: IncomingMessage, trustedProxyHops: number): string {
  const peer = req.socket.remoteAddress ?? "unknown";
  let address = peer;
  if (trustedProxyHops > 0) {
    const header = req.headers["x-forwarded-for"];
    const text = (Array.isArray(header) ? header.join(",") : (header ?? "")).slice(-MAX_FORWARDED_CHARS);
    const hops = text
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    const chain = [...hops, peer];
    const claimed = chain[Math.max(0, chain.length - 1 - trustedProxyHops)]!;
    if (isIP(claimed)) address = claimed;
  }
  return addressKey(address);
}

function addressKey(address: string): string {
  if (address.startsWith("::ffff:") && isIP(address.slice(7)) === 4) return address.slice(7);
  if (isIP(address) !== 6) return address;
  // Expand "::" to reach the first four groups (the /64).
  const [head = "", tail] = address.split("::");
  const groups = head ? head.split(":") : [];
  if (tail !== undefined) {
    const rest = tail ? tail.split(":") : [];
    while (groups.length + rest.length < 8) groups.push("0");
    groups.push(...rest);
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
