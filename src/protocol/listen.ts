import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/** Where a server listens: the address it bound, its port, and a URL that reaches it from this machine. */
export interface BoundAddress {
  address: string;
  port: number;
  url: string;
}

/**
 * Listens on `host`:`port` (0: a free port) and says where. Every listener of both programs (the
 * API, its metrics, a worker's ops endpoint) binds by this one rule: a wildcard bind is reached
 * locally through the loopback address of its family, an IPv6 address goes in brackets.
 */
export async function listenOn(server: Server, port: number, host: string): Promise<BoundAddress> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { address, family, port: bound } = server.address() as AddressInfo;
  const localHost = address === "0.0.0.0" ? "127.0.0.1" : address === "::" ? "::1" : address;
  return { address, port: bound, url: `http://${family === "IPv6" ? `[${localHost}]` : localHost}:${bound}` };
}

/** Stops a small listener (metrics, ops) at once: no new connections, open keep-alive ones dropped. */
export function closeListener(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
