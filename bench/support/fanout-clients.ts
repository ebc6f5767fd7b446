// One client process of the fan-out benchmark (forked by bench/fanout.ts, IPC with the advanced
// serialization). On { open } it opens one graphql-ws connection per subscriber, each subscribed
// to its video with the front end's document, at most `concurrency` handshakes at a time, and
// answers { connected }. Stalled subscribers stop reading their socket after the first event. On
// { finish } it answers { report } with every progress event's latency and its own CPU time; on
// { take } (bench/control-plane.ts, whose subscribers follow videos until they end) it answers
// { taken } with the latencies since the last take and how many subscriptions are still open.
import type { Socket } from "node:net";
import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";
import { epochMs, FRONT_END_VIDEO_EVENTS, SENT_AT_FIELD } from "./fanout-load.ts";

export interface OpenSubscribers {
  url: string;
  connectionParams: Record<string, string>;
  subscribers: { videoId: string; stalled: boolean }[];
  concurrency: number;
}

export interface ConnectedReport {
  accepted: number;
  failed: number;
  firstAttemptAt: number;
  lastAcceptedAt: number;
  errors: Record<string, number>;
  /** CPU time spent opening the subscribers. */
  cpuMs: number;
}

export interface TakenReport {
  latenciesMs: Float64Array;
  /** Subscriptions whose first event arrived and that have not ended since. */
  open: number;
  errors: Record<string, number>;
}

export interface FinishReport {
  /** Progress events received per video by subscribers that read. */
  receivedByVideo: Record<string, number>;
  readingByVideo: Record<string, number>;
  latenciesMs: Float64Array;
  stalled: number;
  stalledClosed: number;
  errors: Record<string, number>;
  /** CPU time spent since every subscriber was open: receiving events. */
  cpuMs: number;
}

const STALLED_RESUME_MS = 1000;

const clients: Client[] = [];
const errors: Record<string, number> = {};
const latencies: number[] = [];
const receivedByVideo: Record<string, number> = {};
const readingByVideo: Record<string, number> = {};
const stalledSockets: WebSocket[] = [];
let stalledClosed = 0;
let accepted = 0;
let ended = 0;
let cpuWhenOpen: NodeJS.CpuUsage | undefined;

function countError(err: unknown): void {
  const e = err as { code?: unknown; reason?: unknown; message?: unknown };
  const key =
    typeof e?.code === "number" ? `closed ${e.code} ${e.reason ?? ""}`.trim() : String(e?.code ?? e?.message ?? e);
  errors[key] = (errors[key] ?? 0) + 1;
}

/** Resolves true once the subscription's first event (the current state) arrived, false if it failed first. */
function openSubscriber(open: OpenSubscribers, subscriber: { videoId: string; stalled: boolean }): Promise<boolean> {
  let socket: WebSocket | null = null;
  const client = createClient({
    url: open.url,
    webSocketImpl: WebSocket,
    connectionParams: open.connectionParams,
    retryAttempts: 0,
    on: { connected: (s) => (socket = s as WebSocket) },
  });
  clients.push(client);
  return new Promise((resolve) => {
    let ready = false;
    client.subscribe(
      { query: FRONT_END_VIDEO_EVENTS, variables: { id: subscriber.videoId } },
      {
        next: (result) => {
          const event = result.data?.videoEvents as Record<string, unknown> | undefined;
          if (!ready) {
            ready = true;
            accepted++;
            if (subscriber.stalled && socket) {
              stalledSockets.push(socket);
              (socket as unknown as { _socket: Socket })._socket.pause();
            } else {
              readingByVideo[subscriber.videoId] = (readingByVideo[subscriber.videoId] ?? 0) + 1;
            }
            resolve(true);
            return;
          }
          if (subscriber.stalled || event?.__typename !== "VariantProgressEvent") return;
          latencies.push(epochMs() - Number(event[SENT_AT_FIELD]));
          receivedByVideo[subscriber.videoId] = (receivedByVideo[subscriber.videoId] ?? 0) + 1;
        },
        error: (err) => {
          if (!(ready && subscriber.stalled)) countError(err);
          if (ready) ended++;
          resolve(false);
        },
        complete: () => {
          if (ready) ended++;
          resolve(ready);
        },
      },
    );
  });
}

async function openAll(open: OpenSubscribers): Promise<ConnectedReport> {
  const cpuBefore = process.cpuUsage();
  const firstAttemptAt = epochMs();
  let lastAcceptedAt = firstAttemptAt;
  let accepted = 0;
  let failed = 0;
  let nextIndex = 0;
  const lane = async () => {
    while (nextIndex < open.subscribers.length) {
      const subscriber = open.subscribers[nextIndex++]!;
      if (await openSubscriber(open, subscriber)) {
        accepted++;
        lastAcceptedAt = epochMs();
      } else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, open.concurrency) }, lane));
  cpuWhenOpen = process.cpuUsage();
  const cpu = process.cpuUsage(cpuBefore);
  return {
    accepted,
    failed,
    firstAttemptAt,
    lastAcceptedAt,
    errors: { ...errors },
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/**
 * A paused socket does not see the server close it: stalled sockets read again for a moment, so
 * the ones the server closed (graphql-ws' keep-alive ends a socket that does not answer its ping)
 * take in the close. Their CPU time is not counted.
 */
async function resumeStalled(): Promise<void> {
  for (const socket of stalledSockets) (socket as unknown as { _socket: Socket })._socket.resume();
  await new Promise((resolve) => setTimeout(resolve, STALLED_RESUME_MS));
  stalledClosed = stalledSockets.filter((s) => s.readyState !== WebSocket.OPEN).length;
}

function finish(cpu: NodeJS.CpuUsage): FinishReport {
  return {
    receivedByVideo,
    readingByVideo,
    latenciesMs: Float64Array.from(latencies),
    stalled: stalledSockets.length,
    stalledClosed,
    errors,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

process.on("message", async (message: { open?: OpenSubscribers; finish?: true; take?: true }) => {
  if (message.take) {
    const taken: TakenReport = {
      // Taken once: a long run's latencies are not kept.
      latenciesMs: Float64Array.from(latencies.splice(0)),
      open: accepted - ended,
      errors,
    };
    process.send?.({ taken });
  }
  if (message.open) process.send?.({ connected: await openAll(message.open) });
  if (message.finish) {
    const cpu = process.cpuUsage(cpuWhenOpen);
    await resumeStalled();
    process.send?.({ report: finish(cpu) }, () => {
      for (const client of clients) void client.dispose();
      process.exit(0);
    });
  }
});
process.on("disconnect", () => process.exit(0));
