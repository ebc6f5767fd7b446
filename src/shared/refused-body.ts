import type { IncomingMessage, ServerResponse } from "node:http";

/** How long the rest of an unread body is read and dropped before its connection is cut. */
const REFUSED_BODY_LINGER_MS = 5000;

/**
 * For every request, whichever handler answers: a body still arriving after the answer is read and dropped, since
 * closing while the client sends makes its kernel reset the connection and a client (Node's fetch) may report
 * "EPIPE" instead of the answer. The connection stays open once the body ends; one still arriving after
 * REFUSED_BODY_LINGER_MS is cut off (a lingering close, RFC 9112 9.6). A handler that reads while it answers
 * (the relayed live ingest) keeps its answer open until it ends.
 */
export function dropBodyLeftAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.once("finish", () => {
    if (req.complete) return;
    req.resume();
    const cutOff = setTimeout(() => req.socket.destroy(), REFUSED_BODY_LINGER_MS);
    cutOff.unref();
    const done = () => clearTimeout(cutOff);
    req.once("end", done);
    req.once("close", done);
  });
}
