import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { log } from "../log.ts";
import { mediaToolPath, stderrTail, toolEnvironment } from "../shared/media-tools.ts";
import { type IngestLimits, type IngestSessions, type Publisher, startPublisher } from "./publisher.ts";
import { flvReader } from "./flv.ts";
import { SRT_GATEWAY_PATH } from "./srt-gateway-build.ts";
import { type SourceLimits, sessionsCountedBySource } from "./source-limits.ts";
import { looksLikeStreamKey } from "./stream-keys.ts";

/** A gateway frame's header: type, connection id, payload length. */
const FRAME_HEADER_BYTES = 9;
/** The gateway sends at most 64 KiB of media per frame; an 'O' frame is an address and a stream key. */
const MAX_FRAME_PAYLOAD = 64 * 1024;
/** A caller's remux that has not taken this much of what the caller sent is too slow: the caller is closed. */
const MAX_REMUX_BACKLOG_BYTES = 16 * 1024 * 1024;
/** After the caller leaves, its remux gets this long to hand over what it still holds. */
const REMUX_DRAIN_MS = 5000;
/**
 * A caller gone within this long of its last media closed its connection (SRT's shutdown): it ended
 * its stream. libsrt reports a connection that broke only after its peer idle timeout (5 s without a
 * packet), so a drop always comes later than this.
 */
const CLEAN_CLOSE_WITHIN_MS = 2500;
/** A gateway that stops unexpectedly is started again after this long. */
const GATEWAY_RESTART_MS = 1000;
/**
 * What the remux reads of a caller's stream before it writes the metadata (size, frame rate) the
 * broadcast starts with: a caller's first keyframe (its SPS) must come within it. Encoders start a
 * stream with one; 2 s also covers joining a stream mid-way with keyframes 2 s apart. ffmpeg reads
 * all of it whatever it finds (5 s, ffmpeg's default, took the first tag 5.3 s; 2 s, 2.3 s).
 */
const REMUX_PROBE_SECONDS = 2;
/** A caller's metadata is due this long after its key is accepted (RTMP's 5 s): the probe, with room for a slow start. */
const SRT_METADATA_SECONDS = 10;
const NOT_TS = "the SRT stream is not MPEG-TS carrying H.264 video (and AAC audio)";

export interface SrtIngestOptions {
  /** The gateway program (default: where `npm run setup:srt` builds it). */
  gatewayPath?: string;
  /** SRT's receiver latency the callers are offered (ms); a caller asking for more gets its own. */
  latencyMs: number;
  /** What each stream's passphrase is made with (stream-keys.ts, srtPassphraseKey): every caller encrypts. */
  passphraseKey: Buffer;
}

/**
 * The SRT ingest (docs/live.md, "SRT"): callers push MPEG-TS to srt://host:port with their stream
 * key as the stream id, encrypted with their stream's passphrase. The gateway (src/live/srt-gateway.c,
 * on Debian's libsrt) holds the SRT connections, refuses callers without the passphrase and moves
 * bytes; this module checks each caller's key before any of its media is
 * read, remuxes what it sends to FLV with ffmpeg (`-c copy`: demuxed, never encoded; no file or
 * network protocol, no secrets in its environment) and hands the tags to the same publisher as
 * an RTMP connection's: the same limits, refusals, broadcasts and feed.
 */
export function createSrtIngest(
  sessions: IngestSessions,
  ingestLimits: IngestLimits,
  sources: SourceLimits,
  options: SrtIngestOptions,
) {
  // The remux reads the stream's first seconds before its size and frame rate are known.
  const limits = { ...ingestLimits, metadataSeconds: SRT_METADATA_SECONDS };
  const gatewayPath = options.gatewayPath ?? SRT_GATEWAY_PATH;
  const callers = new Map<number, SrtCaller>();
  let gateway: ChildProcessWithoutNullStreams | null = null;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | null = null;
  let boundPort = 0;
  /** Publishers the gateway's end closed: an ingest that stops waits until their streams are told. */
  const closing = new Set<Promise<void>>();

  const send = (line: string) => {
    if (gateway && !gateway.stdin.destroyed) gateway.stdin.write(`${line}\n`);
  };

  function start(port: number, host: string): Promise<number> {
    const child = spawn(
      gatewayPath,
      [
        ...["--host", host, "--port", String(port)],
        ...["--max-connections", String(limits.maxConnections), "--latency-ms", String(options.latencyMs)],
        // Counted again in the gateway, in SRT's handshake: a source over it is refused before its caller is accepted.
        ...["--max-connections-per-source", String(sources.settings.maxConnectionsPerSource)],
      ],
      // It parses callers' handshakes: nothing of the API's environment. In its own process group: a
      // terminal's Ctrl-C stops the API, which stops it (its stdin closes), not it first.
      { env: {}, stdio: ["pipe", "pipe", "pipe"], detached: true },
    );
    gateway = child;
    const stderr = stderrTail(child);
    child.stdin.on("error", () => {});
    // Its first line, read before it listens: not in its arguments or environment, which others can read.
    child.stdin.write(`K ${options.passphraseKey.toString("hex")}\n`);
    return new Promise<number>((resolve, reject) => {
      let listening = false;
      const frames = frameReader((type, id, payload) => {
        if (type === "L") {
          listening = true;
          resolve(Number(payload.toString("latin1")));
        } else if (type === "O") onOpen(id, payload);
        else if (type === "D") callers.get(id)?.data(payload);
        else if (type === "C") callers.get(id)?.left();
      });
      child.stdout.on("data", (chunk: Buffer) => {
        const error = frames(chunk);
        if (error) {
          log.error("live ingest: the SRT gateway sent a malformed frame", { error });
          child.kill("SIGKILL");
        }
      });
      child.once("error", (err) => {
        if (!listening) reject(err);
      });
      child.once("close", (code, signal) => {
        if (gateway === child) gateway = null;
        for (const caller of callers.values()) {
          caller.publisher.close(stopping ? null : "the SRT ingest stopped");
          const settled = caller.publisher.settled;
          closing.add(settled);
          void settled.then(() => closing.delete(settled));
        }
        callers.clear();
        if (!listening) {
          reject(
            new Error(`the SRT ingest did not start (LIVE_SRT_PORT): ${stderr().trim() || `exit ${code ?? signal}`}`),
          );
          return;
        }
        if (stopping) return;
        log.error("live ingest: the SRT gateway stopped; starting it again", { code, signal, stderr: stderr().trim() });
        restartTimer = setTimeout(() => {
          restartTimer = null;
          start(boundPort, host).catch((err) => log.error("live ingest: the SRT gateway did not start again", { err }));
        }, GATEWAY_RESTART_MS);
        restartTimer.unref();
      });
    });
  }

  function onOpen(id: number, payload: Buffer): void {
    const text = payload.toString("utf8");
    const newline = text.indexOf("\n");
    const client = text.slice(0, newline);
    // The gateway read it from the caller's stream id (the key, or `#!::r=KEY,m=publish`).
    const key = text.slice(newline + 1);
    const source = sources.admit("srt", client.slice(0, client.lastIndexOf(":")));
    if ("refused" in source) {
      send(`X ${id}`);
      return;
    }
    const caller = new SrtCaller(client, limits, sessionsCountedBySource(sessions, source), {
      accept: () => send(`A ${id}`),
      disconnect: () => {
        source.close();
        callers.delete(id);
        send(`X ${id}`);
      },
    });
    callers.set(id, caller);
    if (looksLikeStreamKey(key)) caller.publisher.publish(key);
    else {
      source.keyRefused();
      caller.publisher.close("not a stream key");
    }
  }

  return {
    async listen(port: number, host: string): Promise<{ address: string; port: number }> {
      // The gateway binds numeric addresses only.
      const address = host === "localhost" ? "127.0.0.1" : host;
      boundPort = await start(port, address);
      return { address, port: boundPort };
    },
    async close(): Promise<void> {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const child = gateway;
      if (!child) return;
      const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
      child.stdin.end();
      const kill = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(kill);
      await Promise.all(closing);
    },
  };
}

/** Reads the gateway's frames from its stdout; returns an error for a malformed stream. */
function frameReader(onFrame: (type: string, id: number, payload: Buffer) => void) {
  let buffered: Buffer = Buffer.alloc(0);
  return (chunk: Buffer): string | null => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    let offset = 0;
    while (buffered.length - offset >= FRAME_HEADER_BYTES) {
      const length = buffered.readUInt32BE(offset + 5);
      if (length > MAX_FRAME_PAYLOAD) return `a frame of ${length} bytes`;
      if (buffered.length - offset < FRAME_HEADER_BYTES + length) break;
      const type = String.fromCharCode(buffered[offset]!);
      const id = buffered.readUInt32BE(offset + 1);
      onFrame(type, id, buffered.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
      offset += FRAME_HEADER_BYTES + length;
    }
    buffered = buffered.subarray(offset);
    return null;
  };
}

/** One SRT caller: its key checked, then its MPEG-TS remuxed to FLV tags for its publisher. */
class SrtCaller {
  readonly publisher: Publisher;
  readonly #limits: IngestLimits;
  readonly #gateway: { accept(): void; disconnect(): void };
  #remux: ChildProcessWithoutNullStreams | null = null;
  #tags = 0;
  #drain: NodeJS.Timeout | null = null;
  readonly #client: string;
  #lastData = Date.now();
  /** Set when the caller leaves: whether it closed its connection itself (it ended its stream). */
  #unpublished = false;

  constructor(
    client: string,
    limits: IngestLimits,
    sessions: IngestSessions,
    gateway: { accept(): void; disconnect(): void },
  ) {
    this.#client = client;
    this.#limits = limits;
    this.#gateway = gateway;
    this.publisher = startPublisher(
      {
        protocol: "srt",
        client,
        hold: () => {},
        // The key is good: the gateway starts reading the caller, into its remux. (Later holds and
        // releases, while the broadcast starts, leave the media flowing: the publisher keeps it, bounded.)
        release: () => {
          if (!this.#remux) this.#startRemux();
        },
        destroy: () => this.#destroy(),
      },
      sessions,
      limits,
    );
  }

  /** Media from the caller. */
  data(payload: Buffer): void {
    this.#lastData = Date.now();
    if (!this.publisher.received(payload.length) || !this.#remux) return;
    if (this.#remux.stdin.writableLength > MAX_REMUX_BACKLOG_BYTES)
      this.publisher.close("the SRT stream could not be remuxed as fast as it came");
    else this.#remux.stdin.write(payload);
  }

  /** The caller is gone: what its remux holds still reaches the broadcast, then the publisher ends. */
  left(): void {
    this.#unpublished = Date.now() - this.#lastData < CLEAN_CLOSE_WITHIN_MS;
    const remux = this.#remux;
    if (!remux || remux.exitCode !== null) {
      this.#ended();
      return;
    }
    remux.stdin.end();
    this.#drain = setTimeout(() => this.#ended(), REMUX_DRAIN_MS);
    this.#drain.unref();
  }

  /** The caller's stream is over: ended by the caller, or its connection dropped. */
  #ended(): void {
    if (this.#unpublished) this.publisher.unpublish();
    else this.publisher.close(null);
  }

  #startRemux(): void {
    const argv = [
      ...["-hide_banner", "-loglevel", "error", "-protocol_whitelist", "pipe"],
      // The stream's codecs and size are read from its first REMUX_PROBE_SECONDS (ffmpeg reads all of
      // them before it writes a tag: the broadcast starts that much later), at most 5 MB.
      ...["-probesize", "5000000", "-analyzeduration", String(REMUX_PROBE_SECONDS * 1_000_000)],
      ...["-f", "mpegts", "-i", "pipe:0"],
      ...["-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-dn", "-sn"],
      ...["-f", "flv", "-flvflags", "no_duration_filesize", "-flush_packets", "1", "pipe:1"],
    ];
    const remux = spawn(mediaToolPath("ffmpeg"), argv, {
      env: toolEnvironment(),
      stdio: ["pipe", "pipe", "pipe"],
      // Like the gateway: a terminal's Ctrl-C reaches the API, which ends its callers; ffmpeg ends with its input.
      detached: true,
    });
    this.#remux = remux;
    const flv = flvReader(
      this.#limits.maxMessageBytes,
      (packet) => {
        this.#tags++;
        this.publisher.packet(packet);
      },
      (error) => `the SRT stream could not be remuxed (${error})`,
    );
    const stderr = stderrTail(remux);
    remux.stdin.on("error", () => {});
    remux.stdout.on("data", (chunk: Buffer) => {
      if (this.publisher.closed) return;
      const refused = flv(chunk);
      if (refused) this.publisher.close(refused);
    });
    remux.once("error", (err) => {
      log.error("live ingest: the SRT remux did not start", { err });
      this.publisher.close("the SRT stream could not be remuxed");
    });
    remux.once("close", (code) => {
      if (this.publisher.closed) return;
      if (code !== 0) {
        log.info("live ingest: the SRT remux failed", { client: this.#client, code, stderr: stderr().trim() });
        return this.publisher.close(this.#tags === 0 ? NOT_TS : "the SRT stream could not be remuxed");
      }
      // The input ended: the caller left (`left` closed its input).
      this.#ended();
    });
    this.#gateway.accept();
  }

  #destroy(): void {
    if (this.#drain) clearTimeout(this.#drain);
    this.#remux?.kill("SIGKILL");
    this.#gateway.disconnect();
  }
}
