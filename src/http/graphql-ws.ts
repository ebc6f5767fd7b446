import type { Server } from "node:http";
import type { ExecutionArgs, execute, subscribe } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import type { YogaServerInstance } from "graphql-yoga";
import { type WebSocket, WebSocketServer } from "ws";
import { AuthenticationError, type Authenticate } from "../auth/authenticate.ts";
import { closeForbidden, type LiveCredentials } from "../auth/live-credentials.ts";
import type { Principal } from "../auth/scopes.ts";
import type { Context } from "../context.ts";
import type { SubscriptionChannel } from "./shared-subscription-results.ts";
import { websocketConnections } from "../metrics.ts";
import { log } from "../log.ts";

/** WebSocket close code 1013, "Try Again Later" (RFC 6455's registry). */
const TRY_AGAIN_LATER = 1013;

/** onSubscribe returns yoga's enveloped execute and subscribe as the operation's rootValue. */
type EnvelopedArgs = ExecutionArgs & { rootValue: { execute: typeof execute; subscribe: typeof subscribe } };

/** The credential a WebSocket client sends: `authorization` in its connection_init payload. */
export function authorizationParam(params: Record<string, unknown> | undefined | null): string | null {
  const value = params?.authorization ?? params?.Authorization;
  return typeof value === "string" ? value : null;
}

/** Close code of a connection refused because the process serves WS_MAX_CONNECTIONS already (RFC 6455). */
export const TRY_AGAIN_LATER_CLOSE_CODE = 1013;
/** Close code of a client that let more than WS_MAX_BUFFERED_BYTES pile up unread. */
export const SLOW_CONSUMER_CLOSE_CODE = 4008;

export interface WebSocketLimits {
  /** Connections this process accepts at once; the next ones are closed with TRY_AGAIN_LATER_CLOSE_CODE. */
  maxConnections: number;
  /** Bytes a connection may have queued for sending; beyond, it is closed with SLOW_CONSUMER_CLOSE_CODE. */
  maxBufferedBytes: number;
}

/**
 * Serves graphql-ws on yoga's endpoint of `httpServer`. It goes through yoga's envelop, so
 * WebSocket and HTTP share plugins and context. Each operation's context inherits `contextBase`
 * (the services every resolver uses).
 */
export function serveGraphqlOverWebSocket(
  httpServer: Server,
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  auth: { authenticate: Authenticate; liveCredentials: LiveCredentials },
  limits: WebSocketLimits,
  contextBase: object,
): ReturnType<typeof useServer> {
  const { authenticate, liveCredentials } = auth;
  // Compression stays off (ws' default for servers): a zlib context per socket costs far more
  // memory than a progress event's few hundred bytes save.
  const wsServer = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint, perMessageDeflate: false });
  refuseBeyondCap(wsServer, limits.maxConnections);
  closeSlowConsumers(wsServer, limits.maxBufferedBytes);
  const results = serializeResultsOnce(wsServer);
  const stopWatching = new WeakMap<object, () => void>();
  wsServer.on("connection", (socket) => {
    websocketConnections.inc();
    socket.once("close", () => websocketConnections.dec());
  });
  const principals = new WeakMap<object, Principal>();
  return useServer(
    {
      // Credentials are checked at connection_init (4403 closes a bad one) and for as long as the
      // socket lives (LiveCredentials: at once when a key is revoked, else every
      // AUTH_RECHECK_SECONDS). Operations on the socket reuse that principal until it expires.
      onConnect: async (ctx) => {
        forgetUpgradeRequest(ctx.extra);
        // Closed already (beyond WS_MAX_CONNECTIONS, or a slow consumer): no lookup for it.
        if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
        const authorization = authorizationParam(ctx.connectionParams);
        // Refused with the reason (graphql-ws' own close after `false` says only "Forbidden").
        try {
          // A credential other live connections hold is watched already: no lookup for this one.
          const principal =
            (authorization && liveCredentials.watchedPrincipal(authorization)) || (await authenticate(authorization));
          if (principal === null) {
            closeForbidden(ctx.extra.socket, 'no credential: send authorization: "Bearer <key>" in connection_init');
            return false;
          }
          principals.set(ctx, principal);
          stopWatching.set(ctx, liveCredentials.watchSocket(authorization!, principal, ctx.extra.socket));
          return true;
        } catch (err) {
          if (err instanceof AuthenticationError) {
            closeForbidden(ctx.extra.socket, err.reason);
            return false;
          }
          // The credential could not be checked (the database restarting): graphql-ws' own close for
          // a throw is 4500, which its clients take as fatal and end every subscription on; 1013
          // they retry, re-subscribing once the check can be made.
          log.warn("a WebSocket connection's credential could not be checked; closed with 1013 for a retry", { err });
          ctx.extra.socket.close(TRY_AGAIN_LATER, "the credential cannot be checked now; try again");
          return false;
        }
      },
      onClose: (ctx) => stopWatching.get(ctx)?.(),
      onNext: (ctx, _id, _payload, _args, result) => results.placeholder(ctx.extra.socket, result),
      execute: (args) => (args as EnvelopedArgs).rootValue.execute(args),
      subscribe: (args) => (args as EnvelopedArgs).rootValue.subscribe(args),
      onSubscribe: async (ctx, id, params) => {
        const {
          schema: s,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped(
          // The services come through the prototype: each of ten thousand subscribers' contexts
          // holds its own few fields, not a copy of every service (the context factory adds none).
          Object.assign(Object.create(contextBase) as object, {
            connectionParams: ctx.connectionParams,
            principal: unexpired(principals.get(ctx)),
            subscriptionChannel: results.channel(ctx.extra.socket, id),
          }),
        );
        const args = {
          schema: s,
          operationName: params.operationName,
          document: parse(params.query),
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wsServer,
  );
}

/**
 * Drops graphql-ws' reference to the socket's upgrade request (`extra.request`), which it would keep
 * for as long as the socket lives: nothing here reads it after the handshake (the credential comes
 * in connection_init, and a WebSocket operation's context has no request), and an `IncomingMessage`
 * with its headers is a few KiB per subscriber (docs/performance.md, "Memory").
 */
function forgetUpgradeRequest(extra: { request?: unknown }): void {
  extra.request = undefined;
}

/** The connection's principal while its credential has not expired; after, operations authenticate again. */
function unexpired(principal: Principal | undefined): Principal | undefined {
  return principal && (principal.expiresAt === null || principal.expiresAt > Date.now()) ? principal : undefined;
}

/** Closes connections beyond `max` as soon as they open, before any work is done for them. */
function refuseBeyondCap(wsServer: WebSocketServer, max: number): void {
  let warned = false;
  wsServer.on("connection", (socket) => {
    // ws counts a socket in `clients` from its upgrade until it closed.
    if (wsServer.clients.size <= max) {
      warned = false;
      return;
    }
    if (!warned) log.warn("WebSocket connections at WS_MAX_CONNECTIONS; refusing more", { max });
    warned = true;
    socket.close(TRY_AGAIN_LATER_CLOSE_CODE, "Too many connections on this server; try again later");
  });
}

/**
 * Subscribers who share a result share its JSON too: graphql-ws would serialise each `next` whole, once per
 * socket. It serialises a few-byte `placeholder` instead (the `onNext` hook), and the socket's send puts the
 * result's JSON, made once per result object, in its place; only the subscription id is each socket's own.
 */
function serializeResultsOnce(wsServer: WebSocketServer) {
  const jsonOf = new WeakMap<object, string>();
  // The placeholders each socket has waiting; a socket has an entry only while it has one waiting,
  // and one whose message is never sent (the socket closed) is dropped with its socket.
  const waitingBySocket = new WeakMap<WebSocket, Map<number, string>>();
  let count = 0;
  wsServer.on("connection", (socket) => {
    const send = socket.send.bind(socket);
    socket.send = ((data: Parameters<WebSocket["send"]>[0], done?: (err?: Error) => void) => {
      send(typeof data === "string" ? withResult(data, socket) : data, done);
    }) as typeof socket.send;
  });
  /** `{"id":…,"type":"next","payload":{"\u0000r":N}}` with the result's JSON for the placeholder. */
  function withResult(message: string, socket: WebSocket): string {
    const waiting = waitingBySocket.get(socket);
    if (!waiting || !message.endsWith("}}")) return message;
    // Only the message's tail is searched: a token has at most 16 digits.
    const start = message.indexOf(PLACEHOLDER_HEAD, Math.max(0, message.length - PLACEHOLDER_TAIL_MAX));
    if (start < 0) return message;
    const token = Number(message.slice(start + PLACEHOLDER_HEAD.length, -2));
    const json = waiting.get(token);
    if (json === undefined) return message;
    waiting.delete(token);
    if (waiting.size === 0) waitingBySocket.delete(socket);
    return `${message.slice(0, start + PAYLOAD_KEY.length)}${json}}`;
  }
  const jsonFor = (result: object): string => {
    let json = jsonOf.get(result);
    if (json === undefined) {
      json = JSON.stringify(result);
      jsonOf.set(result, json);
    }
    return json;
  };
  return {
    /**
     * Sends results of subscription `id` on `socket` as graphql-ws' `next` messages, without
     * graphql-ws (sharedSubscriptionResults writes an audience's results so): the same bytes its
     * own `next` would send, with the result's JSON made once.
     */
    channel(socket: WebSocket, id: string): SubscriptionChannel {
      const head = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
      return {
        next: (result) => {
          if (socket.readyState === socket.OPEN) socket.send(`${head}${jsonFor(result)}}`);
        },
      };
    },
    /**
     * The payload graphql-ws serialises for `result`: a placeholder its socket's send replaces (the
     * socket's entry in `waitingBySocket` is made with its first placeholder).
     */
    placeholder(socket: WebSocket, result: object): Record<string, number> {
      let waiting = waitingBySocket.get(socket);
      if (!waiting) {
        waiting = new Map();
        waitingBySocket.set(socket, waiting);
      }
      const token = count++;
      waiting.set(token, jsonFor(result));
      return { [PLACEHOLDER_KEY]: token };
    },
  };
}

/** A key no GraphQL result has (names cannot hold U+0000), serialised as `"\u0000r"`. */
const PLACEHOLDER_KEY = "\u0000r";
const PAYLOAD_KEY = '"payload":';
const PLACEHOLDER_HEAD = `${PAYLOAD_KEY}${JSON.stringify({ [PLACEHOLDER_KEY]: 0 }).slice(0, -2)}`;
const PLACEHOLDER_TAIL_MAX = PLACEHOLDER_HEAD.length + 16 + 2;

/**
 * A client that does not read must neither hold memory without bound nor hold up anyone else: a send counts as
 * done once ws has it (graphql-ws would wait for each write, piling events up unseen), and past `maxBytes`
 * waiting in ws' buffer the client is closed with SLOW_CONSUMER_CLOSE_CODE.
 */
function closeSlowConsumers(wsServer: WebSocketServer, maxBytes: number): void {
  wsServer.on("connection", (socket) => {
    const send = socket.send.bind(socket);
    socket.send = ((data: string, done?: (err?: Error) => void) => {
      send(data);
      done?.();
      if (socket.bufferedAmount <= maxBytes || socket.readyState !== socket.OPEN) return;
      log.warn("closing a WebSocket client that does not read what it is sent", {
        bufferedBytes: socket.bufferedAmount,
      });
      socket.close(SLOW_CONSUMER_CLOSE_CODE, "Slow consumer: too much unread data");
    }) as typeof socket.send;
  });
}
