import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import nmsLogger from "node-media-server/src/core/logger.js";
import Rtmp from "node-media-server/src/protocol/rtmp.js";
import { type IngestLimits, type IngestSessions, type Publisher, startPublisher } from "./publisher.ts";
import { type SourceConnection, type SourceLimits, sessionsCountedBySource } from "./source-limits.ts";
import { looksLikeStreamKey } from "./stream-keys.ts";

// The parser logs through its own console logger; ours says what matters.
nmsLogger.level = "error";

/** The RTMP application publishers push to: rtmp://host:port/live/{stream key}. */
export const RTMP_APP = "live";

/** A protocol error raised inside the parser by the guards below. */
class IngestRefused extends Error {}

/**
 * node-media-server's RTMP parser with bounds on what a connection may make it allocate: it
 * allocates each message's declared length (up to 16 MiB) per chunk stream (up to 65,599) before
 * a byte of the message arrives.
 */
class GuardedRtmp extends Rtmp {
  readonly limits: IngestLimits;
  /** Called when the publisher ends its stream (`deleteStream`, which OBS and ffmpeg send when they stop). */
  onUnpublish: () => void = () => {};
  constructor(limits: IngestLimits) {
    super();
    this.limits = limits;
  }
  override onDeleteStream(): void {
    this.onUnpublish();
  }
  override packetAlloc(): void {
    if (this.parserPacket.header.length > this.limits.maxMessageBytes)
      throw new IngestRefused(`an RTMP message of ${this.parserPacket.header.length} bytes is over the limit`);
    if (this.inPackets.size > this.limits.maxChunkStreams)
      throw new IngestRefused(`more than ${this.limits.maxChunkStreams} RTMP chunk streams`);
    super.packetAlloc();
  }
}

/**
 * The RTMP ingest (docs/live.md): publishers push to rtmp://host:port/live/{stream key}. The key
 * is checked before anything but the RTMP handshake and commands is parsed, and no media reaches a
 * decoder (the worker's ffmpeg, through the feed) before the stream's metadata says it is H.264
 * (and AAC) within bounds. node-media-server parses RTMP; no byte is decoded in this process.
 */
export function createRtmpIngest(sessions: IngestSessions, limits: IngestLimits, sources: SourceLimits) {
  const sockets = new Set<Socket>();
  const publishers = new Set<Publisher>();
  const server: Server = createServer((socket) => {
    const source = sources.admit("rtmp", socket.remoteAddress ?? "");
    if ("refused" in source) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      source.close();
    });
    const publisher = serveConnection(socket, sessionsCountedBySource(sessions, source), limits, source);
    publishers.add(publisher);
    void publisher.settled.then(() => publishers.delete(publisher));
  });
  server.maxConnections = limits.maxConnections;
  return {
    async listen(port: number, host: string): Promise<{ address: string; port: number }> {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ port, host }, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const { address, port: bound } = server.address() as AddressInfo;
      return { address, port: bound };
    },
    async close(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      // Each stream is told its publisher left before the API goes on stopping (its database first).
      await Promise.all([closed, ...[...publishers].map((p) => p.settled)]);
    },
  };
}

function serveConnection(
  socket: Socket,
  sessions: IngestSessions,
  limits: IngestLimits,
  source: SourceConnection,
): Publisher {
  const rtmp = new GuardedRtmp(limits);
  const publisher = startPublisher(
    {
      protocol: "rtmp",
      client: `${socket.remoteAddress}:${socket.remotePort}`,
      hold: () => socket.pause(),
      release: () => socket.resume(),
      destroy: () => socket.destroy(),
    },
    sessions,
    limits,
  );
  rtmp.onOutputCallback = (buffer) => {
    if (!publisher.closed) socket.write(buffer);
  };
  rtmp.onConnectCallback = () => {};
  // Playing is not offered: viewers watch HLS.
  rtmp.onPlayCallback = () => publisher.close("playing over RTMP is not offered");
  rtmp.onPushCallback = () => {
    const key = (rtmp as unknown as { streamName?: string }).streamName ?? "";
    if (rtmp.streamApp !== RTMP_APP || !looksLikeStreamKey(key)) {
      source.keyRefused();
      return publisher.close("not a stream key");
    }
    publisher.publish(key);
  };
  rtmp.onPacketCallback = (packet) => publisher.packet(packet);
  rtmp.onUnpublish = () => publisher.unpublish();

  socket.setNoDelay(true);
  socket.on("data", (data: Buffer) => {
    if (!publisher.received(data.length)) return;
    try {
      const error = rtmp.parserData(data);
      if (error) publisher.close(`RTMP protocol error: ${error}`);
    } catch (err) {
      publisher.close(err instanceof IngestRefused ? err.message : "malformed RTMP");
    }
  });
  socket.on("end", () => publisher.close(null));
  socket.on("close", () => publisher.close(null));
  socket.on("error", () => publisher.close(null));
  return publisher;
}
