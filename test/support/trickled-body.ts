import { once } from "node:events";
import { connect } from "node:net";

/** What a trickled request saw: the answer's status line, and when the server cut the connection. */
export interface TrickleOutcome {
  /** The answer's first line, e.g. `HTTP/1.1 409 Conflict`; "" when none came. */
  statusLine: string;
  /** Milliseconds from the answer to the server closing the connection; null when it was still open at the end. */
  cutAfterAnswerMs: number | null;
}

/**
 * Sends `method url` over a raw socket, declaring a body of 32 MiB and sending 64 KiB of it every
 * 100 ms for as long as the server keeps the connection open, 15 s at most: a client
 * that goes on sending after its answer. Says what the answer was and when the server cut the
 * connection, if it did.
 */
export async function trickleBody(method: string, url: URL): Promise<TrickleOutcome> {
  const socket = connect(Number(url.port), url.hostname);
  socket.on("error", () => {});
  let received = "";
  let answeredAt = 0;
  socket.on("data", (chunk: Buffer) => {
    answeredAt ||= Date.now();
    received += chunk.toString("latin1");
  });
  let closedAt = 0;
  // Not events.once: it rejects on the socket's "error", and a connection the server cuts while this
  // side still sends ends in a reset (ECONNRESET) as often as in a close.
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      closedAt = Date.now();
      resolve();
    }),
  );
  await once(socket, "connect");
  const startedAt = Date.now();
  socket.write(
    `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-length: ${32 * 1024 * 1024}\r\n\r\n`,
  );
  for (const deadline = startedAt + 15_000; !closedAt && Date.now() < deadline; ) {
    socket.write(Buffer.alloc(64 * 1024));
    await new Promise((r) => setTimeout(r, 100));
  }
  const cut = closedAt;
  socket.destroy();
  await closed;
  return {
    statusLine: received.split("\r\n", 1)[0] ?? "",
    cutAfterAnswerMs: cut && answeredAt ? cut - answeredAt : null,
  };
}
