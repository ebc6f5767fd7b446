/** What yoga's `cors` option takes per request: the CORS headers to send, or none. */
type CorsForRequest = { origin: string; credentials: false; methods: string[]; maxAge: number } | false;

/**
 * CORS for /graphql. Callers authenticate with a bearer credential, never a cookie, so no
 * response allows credentials: a page on another origin can make only the calls its own
 * credential allows. `origins` is `["*"]` (any origin) or the origins allowed; any other origin
 * gets no CORS headers. An allowed origin is echoed back with `Vary: Origin` (yoga does so for "*").
 */
export function graphqlCors(origins: readonly string[]): (request: Request) => CorsForRequest {
  const any = origins.includes("*");
  return (request) => {
    const origin = request.headers.get("origin");
    if (!origin || (!any && !origins.includes(origin))) return false;
    return { origin: "*", credentials: false, methods: ["GET", "POST"], maxAge: 600 };
  };
}
