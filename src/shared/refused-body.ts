import type { IncomingMessage, ServerResponse } from "node:http";

/** How long the rest of an unread body is read and dropped before its connection is cut. */
const REFUSED_BODY_LINGER_MS = 5000;

/**
 * For every request a server takes, whichever handler answers it (a refusal of the upload URL, a
 * GraphQL body over its limit, `/health`, a media file, a page): a body still arriving once the
 * answer is sent is read and dropped, so that the client reads the answer. Closing the connection
 * while the client still sends makes its kernel answer with a reset, and a client (Node's fetch
 * among them) may report that reset ("EPIPE") instead of the answer already sent. The connection
 * stays open for the next request once the body has ended; a body still arriving after
 * REFUSED_BODY_LINGER_MS is cut off (a "lingering close", RFC 9112 section 9.6). Without the
 * cut-off Node reads an unread body to its end, or until the server's `requestTimeout` (5
 * minutes), for as long as a client sends. A handler that reads while it answers (the relayed live
 * ingest) keeps its answer open while it reads: only once it ends that answer is the rest dropped.
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
