import type { Server } from "node:http";
import type { ExecutionArgs, execute, subscribe } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import type { YogaServerInstance } from "graphql-yoga";
import { WebSocketServer } from "ws";
import { AuthenticationError, type Authenticate } from "../auth/authenticate.ts";
import type { LiveCredentials } from "../auth/live-credentials.ts";
import type { Context } from "../context.ts";

/** onSubscribe returns yoga's enveloped execute and subscribe as the operation's rootValue. */
type EnvelopedArgs = ExecutionArgs & { rootValue: { execute: typeof execute; subscribe: typeof subscribe } };

/** The credential a WebSocket client sends: `authorization` in its connection_init payload. */
export function authorizationParam(params: Record<string, unknown> | undefined | null): string | null {
  const value = params?.authorization ?? params?.Authorization;
  return typeof value === "string" ? value : null;
}

/**
 * Serves graphql-ws on yoga's endpoint of `httpServer`. It goes through yoga's envelop, so
 * WebSocket and HTTP share plugins and context.
 */
export function serveGraphqlOverWebSocket(
  httpServer: Server,
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  auth: { authenticate: Authenticate; liveCredentials: LiveCredentials },
): ReturnType<typeof useServer> {
  const { authenticate, liveCredentials } = auth;
  const wsServer = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint });
  const stopWatching = new WeakMap<object, () => void>();
  return useServer(
    {
      // Credentials are checked at connection_init (4403 closes a bad one), by the same code in
      // each operation's context, and for as long as the socket lives (LiveCredentials).
      onConnect: async (ctx) => {
        const authorization = authorizationParam(ctx.connectionParams);
        try {
          const principal = await authenticate(authorization);
          if (principal === null) return false;
          stopWatching.set(ctx, liveCredentials.watchSocket(authorization!, principal, ctx.extra.socket));
          return true;
        } catch (err) {
          if (err instanceof AuthenticationError) return false;
          throw err;
        }
      },
      onClose: (ctx) => stopWatching.get(ctx)?.(),
      execute: (args) => (args as EnvelopedArgs).rootValue.execute(args),
      subscribe: (args) => (args as EnvelopedArgs).rootValue.subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const {
          schema: s,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
          connectionParams: ctx.connectionParams,
        });
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
