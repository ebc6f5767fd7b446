import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { clientAddress } from "../src/http/client-address.ts";

/** The two fields clientAddress reads, as Node's http server sets them. */
const request = (peer: string, forwardedFor?: string) =>
  ({
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
  }) as unknown as IncomingMessage;

describe("clientAddress (who a per-client limit counts)", () => {
  it("is the peer address unless proxies are trusted: X-Forwarded-For is the client's to forge", () => {
    expect(clientAddress(request("203.0.113.7", "198.51.100.1"), 0)).toBe("203.0.113.7");
    expect(clientAddress(request("::ffff:203.0.113.7"), 0)).toBe("203.0.113.7");
  });

  it("with N trusted proxies, reads the Nth address from the right, whatever the client put to the left", () => {
    expect(clientAddress(request("10.0.0.2", "198.51.100.1"), 1)).toBe("198.51.100.1");
    expect(clientAddress(request("10.0.0.2", "1.1.1.1, 2.2.2.2, 198.51.100.1"), 1)).toBe("198.51.100.1");
    expect(clientAddress(request("10.0.0.3", "1.1.1.1, 198.51.100.1, 10.0.0.2"), 2)).toBe("198.51.100.1");
    // Fewer entries than hops, or garbage where the address should be: the peer.
    expect(clientAddress(request("10.0.0.2"), 1)).toBe("10.0.0.2");
    expect(clientAddress(request("10.0.0.2", "not-an-address"), 1)).toBe("10.0.0.2");
    expect(clientAddress(request("10.0.0.2", `${"9,".repeat(100_000)}198.51.100.1`), 1)).toBe("198.51.100.1");
  });

  it("counts an IPv6 client by its /64", () => {
    expect(clientAddress(request("2001:db8:1:2:aaaa::1"), 0)).toBe("2001:db8:1:2::/64");
    expect(clientAddress(request("2001:DB8:1:2:bbbb:cccc:dddd:eeee"), 0)).toBe("2001:db8:1:2::/64");
    expect(clientAddress(request("2001:db8::1"), 0)).toBe("2001:db8:0:0::/64");
    expect(clientAddress(request("::1"), 0)).toBe("0:0:0:0::/64");
  });
});
