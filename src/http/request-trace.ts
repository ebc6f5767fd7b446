import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { withLogFields } from "../shared/log.ts";
import { contextOf, inSpan, SpanKind } from "../shared/tracing.ts";
import { UPLOAD_PATH_PREFIX } from "../storage/api-urls.ts";

/** The routes that get a server span: uploads start a video's trace, GraphQL requests start jobs. */
function tracedRoute(pathname: string): string | null {
  if (pathname.startsWith(UPLOAD_PATH_PREFIX)) return `${UPLOAD_PATH_PREFIX}{videoId}`;
  if (pathname === "/graphql") return "/graphql";
  return null;
}

/**
 * Handles a request with a `requestId` on every line it logs and, for the routes that start work,
 * in a server span continuing the caller's `traceparent` (Cloud Run's load balancer sends one).
 * Media and health requests get no span: players fetch a segment every few seconds.
 */
export function traceRequest<T>(req: IncomingMessage, handle: () => Promise<T>): Promise<T> {
  return withLogFields({ requestId: randomUUID() }, () => {
    const route = tracedRoute(new URL(req.url ?? "/", "http://localhost").pathname);
    if (!route) return handle();
    const header = req.headers.traceparent;
    const span = {
      parent: contextOf(typeof header === "string" ? header : undefined),
      kind: SpanKind.SERVER,
      attributes: { "http.request.method": req.method ?? "", "http.route": route },
    };
    return inSpan(`${req.method} ${route}`, span, handle);
  });
}
