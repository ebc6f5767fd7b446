import { createSocket } from "node:dgram";
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

/** A listener as an operator configures it: its settings, and what it is called in a refusal. */
export interface ListenerNames {
  port: string;
  host: string;
  /** How a refusal names the port: "port" for the API's, "the RTMP ingest's port" for another. */
  what?: string;
  /** UDP for the SRT ingest; TCP otherwise. */
  transport?: "tcp" | "udp";
}

/** A listener that did not bind while the program started; main.ts says which in one line. */
export class ListenerFailed extends Error {
  readonly port: number;
  readonly host: string;
  readonly names: ListenerNames;
  constructor(port: number, host: string, names: ListenerNames, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.port = port;
    this.host = host;
    this.names = names;
  }
}

/**
 * Why a listener could not bind `host`:`port` now, in one line for an operator (a busy port, a
 * privileged one, an address this machine lacks), or null when it can. Checked before a program
 * starts anything slow, so a busy port costs no database start.
 */
export async function whyCannotListen(
  port: number,
  host: string,
  names: ListenerNames = { port: "PORT", host: "HOST" },
): Promise<string | null> {
  const { port: portName, what = "port", transport = "tcp" } = names;
  const code = await tryListen(port, host, transport);
  if (code === null) return null;
  if (code === "EADDRINUSE") {
    let free: number | null = null;
    for (let p = port + 1; p <= Math.min(port + 20, 65535) && free === null; p++)
      if ((await tryListen(p, host, transport)) === null) free = p;
    const suggestion = free === null ? `another ${portName}` : `${portName}=${free}`;
    return `${what} ${port} is in use: set ${suggestion} (or ${portName}=0 for any free port)`;
  }
  if (code === "EACCES") return `${what} ${port} needs privileges on this machine: set ${portName} to 1024 or above`;
  if (code === "EADDRNOTAVAIL")
    return `${host} is not an address of this machine: set ${names.host}=0.0.0.0 or 127.0.0.1`;
  return `cannot listen on ${host}:${port} (${code})`;
}

function tryListen(port: number, host: string, transport: "tcp" | "udp"): Promise<string | null> {
  return new Promise((resolve) => {
    if (transport === "udp") {
      const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
      socket.once("error", (err: NodeJS.ErrnoException) => {
        socket.close();
        resolve(err.code ?? err.message);
      });
      socket.bind({ port, address: host === "localhost" ? "127.0.0.1" : host, exclusive: true }, () =>
        socket.close(() => resolve(null)),
      );
      return;
    }
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(null)));
  });
}
