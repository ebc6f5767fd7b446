// The fan-out benchmark's anchor: plain graphql-yoga + graphql-ws (yoga's graphql-ws example), the
// same subscription shape as videograph's `videoEvents`, no auth, no database, an in-memory pubsub.
// Started by bench/fanout.ts with IPC: it sends { port } once listening; on { publish: { videoIds,
// seconds, mode } } it publishes progress from an in-process timer on the benchmark's schedule and answers
// { published }.
import { setMaxListeners } from "node:events";
import { createServer } from "node:http";
import type { ExecutionArgs, execute, subscribe } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { createPubSub, createSchema, createYoga } from "graphql-yoga";
import { WebSocketServer } from "ws";
import { type PublishMode, publish, SENT_AT_FIELD } from "./fanout-load.ts";

type EnvelopedArgs = ExecutionArgs & { rootValue: { execute: typeof execute; subscribe: typeof subscribe } };

interface VideoState {
  id: string;
  status: string;
  playable: boolean;
}
type VideoEvent =
  | { kind: "status"; video: VideoState }
  | {
      kind: "variantProgress";
      video: VideoState;
      variant: { name: string; height: number; status: string; progress: number };
      fps: number;
      speed: number;
      etaSeconds: number;
    };

// Every subscriber of a video listens on its topic: thousands of listeners are the load, not a leak.
const eventTarget = new EventTarget();
setMaxListeners(0, eventTarget);
const pubSub = createPubSub<{ videoEvents: [videoId: string, event: VideoEvent] }>({ eventTarget });
const videoOf = (id: string): VideoState => ({ id, status: "PROCESSING", playable: false });

const schema = createSchema({
  typeDefs: /* GraphQL */ `
    type Query { ok: Boolean }
    type Video { id: ID! status: String! playable: Boolean! }
    type Variant { name: String! height: Int status: String! progress: Float! }
    interface VideoEvent { video: Video! }
    type VideoStatusEvent implements VideoEvent { video: Video! status: String! }
    type VariantProgressEvent implements VideoEvent {
      video: Video! variant: Variant! fps: Float speed: Float etaSeconds: Float
    }
    type Subscription { videoEvents(videoId: ID!): VideoEvent! }
  `,
  resolvers: {
    VideoEvent: {
      __resolveType: (e: VideoEvent) => (e.kind === "status" ? "VideoStatusEvent" : "VariantProgressEvent"),
    },
    VideoStatusEvent: { status: (e: VideoEvent) => e.video.status },
    Subscription: {
      videoEvents: {
        subscribe: async function* (_root: unknown, { videoId }: { videoId: string }) {
          const events = pubSub.subscribe("videoEvents", videoId);
          yield { kind: "status", video: videoOf(videoId) } satisfies VideoEvent;
          yield* events;
        },
        resolve: (event: VideoEvent) => event,
      },
    },
  },
});

const yoga = createYoga({ schema, logging: false });
const httpServer = createServer(yoga);
const wsServer = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint });
useServer(
  {
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

httpServer.listen(0, "127.0.0.1", () => {
  const address = httpServer.address();
  process.send?.({ port: typeof address === "object" && address ? address.port : 0 });
});

process.on("message", async (message: { publish?: { videoIds: string[]; seconds: number; mode: PublishMode } }) => {
  if (!message.publish) return;
  const { videoIds, seconds, mode } = message.publish;
  const published = await publish(mode, videoIds, seconds, (videoId, sentAt) =>
    pubSub.publish("videoEvents", videoId, {
      kind: "variantProgress",
      video: videoOf(videoId),
      variant: { name: "720p", height: 720, status: "ENCODING", progress: 0.5 },
      fps: 120,
      speed: 4,
      [SENT_AT_FIELD]: sentAt,
    }),
  );
  process.send?.({ published });
});
process.on("disconnect", () => process.exit(0));
// An exit, not a kill: a CPU profile (bench:fanout --profile) is written on the way out.
process.on("SIGTERM", () => process.exit(0));
