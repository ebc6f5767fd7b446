import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { expect } from "vitest";

// Real publishers for the live tests: ffmpeg pushing a lavfi test pattern and tone over RTMP or SRT
// to the API's ingest on loopback.

/** `publishUntilStopped`'s publishers not yet stopped: `killPublishersOnAir` ends them after a test. */
const onAir = new Set<ChildProcess>();

/** Kills every publisher a test left on air (a failed one), so the next test starts with none. */
export function killPublishersOnAir(): void {
  for (const child of onAir) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  onAir.clear();
}

/**
 * A publisher (as `publish`) on air until the test stops it: a broadcast that outlasts what the test
 * checks while it is live, however long a loaded host takes (a fixed length raced the watch page:
 * its broadcast ended first). `stop` ends it as its operator would (ffmpeg's `q`: a clean end, exit
 * 0) and resolves with the seconds of video it sent, from ffmpeg's own count of frames encoded.
 */
export function publishUntilStopped(
  url: string,
  options: { srt?: boolean; readrate?: number; gopSeconds?: number } = {},
): {
  process: ChildProcess;
  exited: Promise<number | null>;
  startedAt: number;
  stop(): Promise<number>;
  /** The seconds of video sent so far (all it sent, once `exited`: a publisher cut off). */
  sent(): number;
} {
  const startedAt = Date.now();
  // A bound on a test that never stops it.
  const { process: child, exited } = publish(url, 180, options, { progress: true });
  onAir.add(child);
  const progress = publisherProgress(child);
  return {
    process: child,
    exited,
    startedAt,
    sent: () => progress.sentSeconds(),
    async stop() {
      // A publisher that has already exited (its stop is then checked below) closed its end.
      child.stdin?.on("error", () => {});
      child.stdin?.end("q");
      await progress.closed;
      expect(progress.ended(), "ffmpeg's last progress report").toBe(true);
      return progress.sentSeconds();
    },
  };
}

/** The frame rate `publish` sends at. */
export const PUBLISHER_FPS = 25;

/**
 * What a `publish` started with `progress` has sent, from ffmpeg's `-progress` lines: the seconds of
 * video encoded so far (its frames over `PUBLISHER_FPS`), whether it reported its end
 * (`progress=end`: its input ended or it was told `q`, not cut off), and `closed`, after its exit and
 * its stdout's last lines (`exit` may come before them).
 */
export function publisherProgress(child: ChildProcess): {
  sentSeconds(): number;
  ended(): boolean;
  closed: Promise<void>;
} {
  let frames = 0;
  let ended = false;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("frame=")) frames = Number(line.slice("frame=".length));
    if (line === "progress=end") ended = true;
  });
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return { sentSeconds: () => frames / PUBLISHER_FPS, ended: () => ended, closed };
}

/**
 * ffmpeg publishing `seconds` of a 320x240 25 fps test pattern with a tone, in real time, as FLV
 * over RTMP (or, with `srt`, as MPEG-TS to an srt:// URL); with `jumpAt`, its timestamps leap 100 s
 * forward at that second (a hostile or broken encoder); with `readrate`, at that many times real
 * time (an encoder emptying its buffer after its uplink stalled, a file pushed without `-re`). A
 * keyframe every second, or every `gopSeconds`. With `progress`: ffmpeg's `-progress` lines on its
 * stdout, and its stdin open for `q`.
 */
export function publish(
  url: string,
  seconds: number,
  options: { jumpAt?: number; videoCodec?: string; srt?: boolean; readrate?: number; gopSeconds?: number } = {},
  { progress = false } = {},
): { process: ChildProcess; exited: Promise<number | null> } {
  const jump = (pts: string) =>
    options.jumpAt === undefined ? [] : [`if(gte(T,${options.jumpAt}),${pts}+100/TB,${pts})`];
  const child = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-loglevel", "error"],
      ...(options.readrate === undefined ? ["-re"] : ["-readrate", String(options.readrate)]),
      ...["-f", "lavfi", "-i", `testsrc2=size=320x240:rate=${PUBLISHER_FPS}:duration=${seconds}`],
      ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
      ...jump("PTS").flatMap((e) => ["-vf", `setpts='${e}'`, "-af", `asetpts='${e}'`]),
      ...(options.videoCodec
        ? ["-c:v", options.videoCodec]
        : ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
      ...(options.videoCodec ? [] : ["-g", String(PUBLISHER_FPS * (options.gopSeconds ?? 1))]),
      ...(progress ? ["-progress", "pipe:1"] : []),
      ...["-c:a", "aac", "-b:a", "64k", "-f", options.srt ? "mpegts" : "flv", url],
    ],
    { stdio: progress ? ["pipe", "pipe", "pipe"] : ["ignore", "ignore", "pipe"] },
  );
  child.stderr?.resume();
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { process: child, exited };
}
