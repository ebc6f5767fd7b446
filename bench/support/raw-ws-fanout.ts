// The fan-out benchmark's floor: no GraphQL at all. A `ws` server that speaks just enough of the
// graphql-ws protocol for the benchmark's clients (connection_ack, one `next` per event, pings
// answered) and, for each event, serialises the result once and writes it to every subscriber of
// the video with only its subscription id spliced in. What is left is the cost of the sockets
// themselves (a frame and a write per subscriber), which no GraphQL server can go below on the
// same machine. Started by bench/fanout.ts with IPC, as plain-yoga-fanout.ts is.
import { createServer } from "node:http";
import { WebSocket, WebSocketServer } from "ws";
import { type PublishMode, publish, SENT_AT_FIELD } from "./fanout-load.ts";

interface Subscriber {
  socket: WebSocket;
  /** `{"id":"<subscription id>","type":"next","payload":` — the part of each message that is its own. */
  head: string;
}

const subscribersByVideo = new Map<string, Subscriber[]>();

/** The same data the other two servers send for the front end's document. */
function resultJson(videoId: string, event: "status" | "progress", sentAt?: number): string {
  const video = { id: videoId, status: "PROCESSING", playable: false };
  const videoEvents =
    event === "status"
      ? { __typename: "VideoStatusEvent", video }
      : {
          __typename: "VariantProgressEvent",
          video,
          variant: { name: "720p", height: 720, status: "ENCODING", progress: 0.5 },
          fps: 120,
          speed: 4,
          [SENT_AT_FIELD]: sentAt,
        };
  return JSON.stringify({ data: { videoEvents } });
}

const httpServer = createServer((_req, res) => res.writeHead(404).end());
const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql", perMessageDeflate: false });
wsServer.on("connection", (socket) => {
  const mine: { videoId: string; subscriber: Subscriber }[] = [];
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as {
      type: string;
      id?: string;
      payload?: { variables?: { id?: string } };
    };
    if (message.type === "connection_init") return socket.send('{"type":"connection_ack"}');
    if (message.type === "ping") return socket.send('{"type":"pong"}');
    if (message.type === "subscribe" && message.id && message.payload?.variables?.id) {
      const videoId = message.payload.variables.id;
      const subscriber = { socket, head: `{"id":${JSON.stringify(message.id)},"type":"next","payload":` };
      const list = subscribersByVideo.get(videoId) ?? [];
      subscribersByVideo.set(videoId, list);
      list.push(subscriber);
      mine.push({ videoId, subscriber });
      socket.send(`${subscriber.head}${resultJson(videoId, "status")}}`);
    }
  });
  socket.on("close", () => {
    for (const { videoId, subscriber } of mine) {
      const list = subscribersByVideo.get(videoId);
      if (list)
        subscribersByVideo.set(
          videoId,
          list.filter((s) => s !== subscriber),
        );
    }
  });
});

httpServer.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => {
  const address = httpServer.address();
  process.send?.({ port: typeof address === "object" && address ? address.port : 0 });
});

process.on("message", async (message: { publish?: { videoIds: string[]; seconds: number; mode: PublishMode } }) => {
  if (!message.publish) return;
  const { videoIds, seconds, mode } = message.publish;
  const published = await publish(mode, videoIds, seconds, (videoId, sentAt) => {
    const json = resultJson(videoId, "progress", sentAt);
    for (const { socket, head } of subscribersByVideo.get(videoId) ?? []) {
      if (socket.readyState === WebSocket.OPEN) socket.send(`${head}${json}}`);
    }
  });
  process.send?.({ published });
});
process.on("disconnect", () => process.exit(0));
// An exit, not a kill: a CPU profile (bench:fanout --profile) is written on the way out.
process.on("SIGTERM", () => process.exit(0));
