import { PUBLISHER_FPS, publish, publisherProgress } from "../../test/support/live-publisher.ts";

/** One connection of a reconnecting publisher: when it started, what it sent, how it ended. */
export interface PublisherConnection {
  at: number;
  /** Seconds of video ffmpeg reported encoded on this connection (its last `-progress` line). */
  sentSeconds: number;
  exitCode: number | null;
  /** ffmpeg's end on this connection was its own (its input ended: RTMP deleteStream), not a cut-off or a refusal. */
  clean: boolean;
}

/**
 * A connection cut off before it sent this much was refused, not dropped: the API refuses a publisher
 * after its publish command and its metadata, by when ffmpeg has encoded a few frames (0.2 s here).
 */
export const REFUSED_BELOW_SECONDS = 1;

/** How a connection ended: its input's end (`clean`), cut off after it was taken (`dropped`), or `refused`. */
export function connectionEnd(c: PublisherConnection): "clean" | "dropped" | "refused" {
  if (c.clean) return "clean";
  return c.sentSeconds < REFUSED_BELOW_SECONDS ? "refused" : "dropped";
}

export interface ReconnectingPublisher {
  connections: PublisherConnection[];
  /** Seconds of video sent over every connection so far. */
  sentSeconds(): number;
  /** Seconds of video sent over the connections that were taken (not refused). */
  sentWhileConnected(): number;
  /** Connections that were taken and cut off. */
  drops(): number;
  /** Connections refused, at connect or after their first frames. */
  refusals(): number;
  /** Whether it stopped retrying (`giveUpAfterMs` without a connection that sent anything). */
  gaveUp(): boolean;
  /** Resolves once it has sent `seconds` and ended cleanly, gave up, or was stopped. */
  done: Promise<void>;
  /** Kills the connection on air and stops retrying. */
  stop(): void;
}

/**
 * Publishes `seconds` of `publish`'s test pattern to the RTMP `url` in all, as an encoder with
 * automatic reconnect does (OBS's "Automatically Reconnect"): when its connection drops or is refused,
 * a new one `retryDelayMs` later sends what is left (its timestamps start again at 0, as after an
 * encoder's restart); the input's end is a clean stop (RTMP deleteStream). It gives up after
 * `giveUpAfterMs` without a connection that sent a frame.
 */
export function publishReconnecting(
  url: string,
  {
    seconds,
    retryDelayMs = 2000,
    giveUpAfterMs = 60_000,
    log = () => {},
  }: { seconds: number; retryDelayMs?: number; giveUpAfterMs?: number; log?: (line: string) => void },
): ReconnectingPublisher {
  const connections: PublisherConnection[] = [];
  const sentSeconds = () => connections.reduce((sum, c) => sum + c.sentSeconds, 0);
  let stopped = false;
  let gaveUp = false;
  let onAir: ReturnType<typeof publish>["process"] | null = null;
  let wake: () => void = () => {};
  const done = (async () => {
    let lastSentAt = Date.now();
    while (!stopped) {
      const left = seconds - sentSeconds();
      if (left < 1 / PUBLISHER_FPS) return;
      const at = Date.now();
      const { process: child, exited } = publish(url, Number(left.toFixed(2)), {}, { progress: true });
      onAir = child;
      const progress = publisherProgress(child);
      const exitCode = await exited;
      await progress.closed;
      onAir = null;
      const connection = { at, sentSeconds: progress.sentSeconds(), exitCode, clean: exitCode === 0 };
      connections.push(connection);
      if (connection.sentSeconds > 0) lastSentAt = Date.now();
      if (connection.clean && seconds - sentSeconds() < 1 / PUBLISHER_FPS) return;
      log(
        `publisher ${connectionEnd(connection) === "dropped" ? "cut off" : "refused"} after ${connection.sentSeconds.toFixed(2)} s ` +
          `(exit ${exitCode}); ${(seconds - sentSeconds()).toFixed(1)} s left to send`,
      );
      if (Date.now() - lastSentAt > giveUpAfterMs) {
        gaveUp = true;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, retryDelayMs);
      });
    }
  })();
  return {
    connections,
    sentSeconds,
    sentWhileConnected: () =>
      connections.filter((c) => connectionEnd(c) !== "refused").reduce((sum, c) => sum + c.sentSeconds, 0),
    drops: () => connections.filter((c) => connectionEnd(c) === "dropped").length,
    refusals: () => connections.filter((c) => connectionEnd(c) === "refused").length,
    gaveUp: () => gaveUp,
    done,
    stop() {
      stopped = true;
      onAir?.kill("SIGKILL");
      wake();
    },
  };
}
