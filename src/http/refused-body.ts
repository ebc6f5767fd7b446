import type { IncomingMessage } from "node:http";

/** How long the rest of a refused body is read and dropped before its connection is cut. */
const REFUSED_BODY_LINGER_MS = 5000;

/**
 * Reads and drops the rest of a refused request's body, so that the client reads the answer.
 * Closing the connection while the client still sends makes its kernel answer with a reset, and a
 * client (Node's fetch among them) may report that reset ("EPIPE") instead of the answer already
 * sent. The connection stays open for the next request once the body has ended; a body still
 * arriving after REFUSED_BODY_LINGER_MS is cut off (a "lingering close", RFC 9112 section 9.6).
 */
export function dropRefusedBody(req: IncomingMessage): void {
  req.resume();
  if (req.complete) return;
  const cutOff = setTimeout(() => req.socket.destroy(), REFUSED_BODY_LINGER_MS);
  cutOff.unref();
  const done = () => clearTimeout(cutOff);
  req.once("end", done);
  req.once("close", done);
}
