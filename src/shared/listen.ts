import type { Server } from "node:http";
import { type AddressInfo, createServer } from "node:net";

/** Where a server listens: the address it bound, its port, and a URL that reaches it from this machine. */
export interface BoundAddress {
  address: string;
  port: number;
  url: string;
}

/**
 * Connections the kernel holds for a listener before it accepts them (Node's default is 511). Every
 * front end of a restarted API reconnects at once: with 10,000 of them a queue of 511 overflowed and
 * handshakes were reset. Linux caps it at net.core.somaxconn (4096 since 5.4).
 */
const LISTEN_BACKLOG = 4096;

/**
 * Listens on `host`:`port` (0: a free port) and says where. Every listener of both programs (the
 * API, its metrics, a worker's ops endpoint) binds by this one rule: a wildcard bind is reached
 * locally through the loopback address of its family, an IPv6 address goes in brackets.
 */
export async function listenOn(server: Server, port: number, host: string): Promise<BoundAddress> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
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

/**
 * Why a listener could not bind `host`:`port` now, in one line for an operator (a busy port, a
 * privileged one, an address this machine lacks), or null when it can. Checked before a program
 * starts anything slow, so a busy port costs no database start.
 */
export async function whyCannotListen(
  port: number,
  host: string,
  names: { port: string; host: string } = { port: "PORT", host: "HOST" },
): Promise<string | null> {
  const portName = names.port;
  const code = await tryListen(port, host);
  if (code === null) return null;
  if (code === "EADDRINUSE") {
    let free: number | null = null;
    for (let p = port + 1; p <= Math.min(port + 20, 65535) && free === null; p++)
      if ((await tryListen(p, host)) === null) free = p;
    const suggestion = free === null ? `another ${portName}` : `${portName}=${free}`;
    return `port ${port} is in use: set ${suggestion} (or ${portName}=0 for any free port)`;
  }
  if (code === "EACCES") return `port ${port} needs privileges on this machine: set ${portName} to 1024 or above`;
  if (code === "EADDRNOTAVAIL")
    return `${host} is not an address of this machine: set ${names.host}=0.0.0.0 or 127.0.0.1`;
  return `cannot listen on ${host}:${port} (${code})`;
}

function tryListen(port: number, host: string): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(null)));
  });
}
