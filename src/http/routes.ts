import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createYoga } from "graphql-yoga";
import type { AppParts } from "../app/services.ts";
import type { Principal } from "../auth/scopes.ts";
import { createAudioTrackCatalog } from "../audio-tracks/audio-renditions.ts";
import { createCaptionCatalog } from "../captions/subtitle-playlists.ts";
import type { Env } from "../config.ts";
import type { Context } from "../context.ts";
import { log, yogaLog } from "../log.ts";
import { graphqlMetricsPlugins, observeHttpRequest } from "../metrics.ts";
import { schema } from "../schema/index.ts";
import { dropBodyLeftAfterAnswer } from "../shared/refused-body.ts";
import { MEDIA_PATH_PREFIX, UPLOAD_PATH_PREFIX } from "../storage/api-urls.ts";
import { handleUpload } from "../uploads/upload-put.ts";
import { CONSOLE_DIST, createConsoleHandler } from "./console.ts";
import { graphqlCors } from "./cors.ts";
import { graphiqlPage, renderOfflineGraphiQL } from "./graphiql.ts";
import { graphqlSecurityPlugins, maskApiError } from "./graphql-security.ts";
import { authorizationParam, serveGraphqlOverWebSocket } from "./graphql-ws.ts";
import { serveHealthPath } from "./health.ts";
import { createLivePlaylists } from "./live-playlists.ts";
import { handleMedia } from "./media.ts";
import { serveClearKeyLicence, serveSegmentKey } from "../content-protection/key-endpoint.ts";
import { clearKeyLicenceRequest, contentKeyRequest } from "../content-protection/playlist-keys.ts";
import { createPlaybackGuard } from "./playback-guard.ts";
import { traceRequest } from "./request-trace.ts";
import { sharedSubscriptionResults } from "./shared-subscription-results.ts";
import { createVideoImageRoute } from "./video-images.ts";

/** What yoga builds a context from: an HTTP request, or a WebSocket's connection_init payload. */
type ContextInput = { request?: Request; connectionParams?: Record<string, unknown>; principal?: Principal };

/**
 * The API's HTTP server (not listening yet): uploads, `/media/`, analytics, live feeds and relays,
 * health, the console, and GraphQL over HTTP and graphql-ws, one route() in that order.
 */
export function createHttpRoutes(env: Env, parts: AppParts) {
  const { services, storage, authenticate, liveCredentials, rateLimits, ingests } = parts;
  const { db, playbackTokens, analytics, live, transport } = services;
  const guard = createPlaybackGuard(db, playbackTokens);
  const keyEndpoint = { db, contentKeys: services.contentKeys, tokens: playbackTokens };
  const livePlaylists = createLivePlaylists({
    windowSeconds: env.LIVE_DVR_WINDOW_SECONDS,
    readText: (key) => storage.readText(key),
  });
  const catalogs = { captions: createCaptionCatalog(db), audioTracks: createAudioTrackCatalog(db) };
  const serveMedia = (req: IncomingMessage, res: ServerResponse, url: URL) =>
    handleMedia(storage, guard, catalogs, livePlaylists, req, res, url);
  const videoImages = createVideoImageRoute({
    db,
    storage,
    guard,
    serveMedia,
    cacheBudget: { videoBytes: env.IMAGE_CACHE_BYTES_PER_VIDEO, tenantBytes: env.IMAGE_CACHE_BYTES_PER_TENANT },
    trustedProxyHops: env.TRUST_PROXY_HOPS,
  });

  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    // HTTP: the Authorization header. WebSocket (no fetch Request): `authorization` in the
    // connection_init payload. Both go through the same authenticate().
    context: async (initial: ContextInput): Promise<Context> => {
      const { request, connectionParams, principal } = initial;
      const own = {
        requestOrigin: request?.headers.get("origin") ?? null,
        // A WebSocket operation gets the principal its connection authenticated as (graphql-ws.ts).
        auth:
          principal ??
          (await authenticate(request ? request.headers.get("authorization") : authorizationParam(connectionParams))),
      };
      // A WebSocket operation's context inherits the services already (graphql-ws.ts).
      return Object.getPrototypeOf(initial) === services ? (own as Context) : { ...services, ...own };
    },
    plugins: [
      ...graphqlSecurityPlugins(env, () => rateLimits.limiter),
      liveCredentials.plugin(),
      sharedSubscriptionResults(),
      graphiqlPage(),
      ...(env.METRICS_PORT === undefined ? [] : graphqlMetricsPlugins()),
    ],
    graphqlEndpoint: "/graphql",
    cors: graphqlCors(env.CORS_ORIGINS),
    graphiql: env.GRAPHIQL ?? env.NODE_ENV !== "production",
    renderGraphiQL: renderOfflineGraphiQL,
    landingPage: false,
    maskedErrors: { maskError: maskApiError },
    logging: yogaLog(),
  });

  const handleConsole = createConsoleHandler({
    distDir: CONSOLE_DIST,
    remoteMedia: storage.publishedObjects.servedBy === "bucket",
  });
  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (env.METRICS_PORT !== undefined) observeHttpRequest(req, res, url.pathname);
    // S3 and local storage take uploads here; GCS takes them in resumable sessions of its own.
    if (url.pathname.startsWith(UPLOAD_PATH_PREFIX) && "writeUploadChunk" in storage) {
      return handleUpload(
        { ...services, storage, idleTimeoutMs: env.UPLOAD_IDLE_TIMEOUT_SECONDS * 1000 },
        req,
        res,
        url,
      );
    }
    if (url.pathname.startsWith(MEDIA_PATH_PREFIX)) {
      // Tenant bytes: a browser must never guess them into HTML or script.
      res.setHeader("x-content-type-options", "nosniff");
      const keyRequest = contentKeyRequest(url.pathname.slice(MEDIA_PATH_PREFIX.length));
      if (keyRequest) return serveSegmentKey(keyEndpoint, req, res, url, keyRequest);
      const licenceRequest = clearKeyLicenceRequest(url.pathname.slice(MEDIA_PATH_PREFIX.length));
      if (licenceRequest) return serveClearKeyLicence(keyEndpoint, req, res, url, licenceRequest);
      return videoImages.matches(url) ? videoImages.handle(req, res, url) : serveMedia(req, res, url);
    }
    if (analytics.matches(url)) return analytics.handle(req, res, url);
    if (live.matchesFeed(url)) return live.handleFeed(req, res, url);
    if (ingests.relay.matches(url)) return ingests.relay.handle(req, res, url);
    if (await serveHealthPath(url.pathname, { db, transport }, res)) return;
    if (await handleConsole(req, res, url)) return;
    if (refusedForSize(req, res, env)) return;
    await yoga.requestListener(req, res);
  }

  const httpServer = createHttpServer((req, res) => {
    dropBodyLeftAfterAnswer(req, res);
    traceRequest(req, () => route(req, res)).catch((err) => {
      log.error("request failed", { err, url: req.url });
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "Internal server error" }));
    });
  });
  httpServer.keepAliveTimeout = env.HTTP_KEEP_ALIVE_SECONDS * 1000;

  const webSockets = serveGraphqlOverWebSocket(
    httpServer,
    yoga,
    { authenticate, liveCredentials },
    { maxConnections: env.WS_MAX_CONNECTIONS, maxBufferedBytes: env.WS_MAX_BUFFERED_BYTES },
    services,
  );
  return { yoga, httpServer, webSockets };
}

/**
 * Bodies are read into memory by yoga: an oversized POST is refused (413), or one without a
 * Content-Length (411), before a byte is read (the server then drops what arrives:
 * dropBodyLeftAfterAnswer). True once the request was answered.
 */
function refusedForSize(req: IncomingMessage, res: ServerResponse, env: Env): boolean {
  if (req.method !== "POST") return false;
  const multipart = String(req.headers["content-type"] ?? "").startsWith("multipart/form-data");
  const [limit, name] = multipart
    ? [env.MULTIPART_MAX_BYTES, "MULTIPART_MAX_BYTES"]
    : [env.GRAPHQL_MAX_BODY_BYTES, "GRAPHQL_MAX_BODY_BYTES"];
  const length = Number(req.headers["content-length"] ?? NaN);
  if (!Number.isFinite(length)) {
    res.writeHead(411, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ message: "GraphQL POST requests need a Content-Length" }] }));
    return true;
  }
  if (length > limit) {
    res.writeHead(413, { "content-type": "application/json" });
    const hint = multipart ? "; use createUpload for large files" : "";
    res.end(JSON.stringify({ errors: [{ message: `Request of ${length} bytes exceeds ${name} (${limit})${hint}` }] }));
    return true;
  }
  return false;
}
