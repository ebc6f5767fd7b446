import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An HTTP pass-through in front of a storage emulator that can be cut, as an outage cuts a store:
 * while cut, new connections are refused (ECONNREFUSED) and a new request on a kept-alive
 * connection is reset; a response already streaming (ffmpeg reading its source) runs on.
 */
export interface CuttableProxy {
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  stop(): Promise<void>;
}

/** Passes one request on to `upstream` as it came, and its answer back as it comes. */
export function forwardRequest(upstream: URL, req: IncomingMessage, res: ServerResponse): void {
  const forwarded = request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    },
  );
  forwarded.on("error", () => res.destroy());
  req.pipe(forwarded);
}

export async function startCuttableProxy(target: string): Promise<CuttableProxy> {
  const upstream = new URL(target);
  let cut = false;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (cut) return void req.socket.destroy();
    forwardRequest(upstream, req, res);
  };
  const listen = async (port: number): Promise<Server> => {
    const server = createServer(handle);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    return server;
  };
  let server: Server | null = await listen(0);
  const port = (server.address() as AddressInfo).port;
  const close = (s: Server) => {
    s.close();
    s.closeIdleConnections();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    async cut() {
      cut = true;
      if (server) close(server);
      server = null;
    },
    async restore() {
      server = await listen(port);
      cut = false;
    },
    async stop() {
      if (server) close(server);
      server?.closeAllConnections();
      server = null;
    },
  };
}

/**
 * A pass-through in front of a server not started yet (`forwardTo` names it), whose open connections
 * can be broken at once (`breakConnections`), as a killed server's are, while it goes on taking new
 * ones: a broadcast's feed address (LIVE_FEED_URL) whose worker's reads are cut off.
 */
export interface BreakableProxy {
  url: string;
  forwardTo(target: string): void;
  breakConnections(): void;
  stop(): Promise<void>;
}

export async function startBreakableProxy(): Promise<BreakableProxy> {
  let upstream: URL | null = null;
  const server = createServer((req, res) => {
    if (!upstream) return void req.socket.destroy();
    const forwarded = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on("error", () => res.destroy());
    // A broken connection's read ends upstream too, as the reader's death would end it.
    res.on("close", () => forwarded.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    forwardTo(target) {
      upstream = new URL(target);
    },
    breakConnections() {
      server.closeAllConnections();
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
