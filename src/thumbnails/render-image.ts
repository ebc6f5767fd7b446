import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import path from "node:path";
import { mediaToolPath, stderrTail, toolEnvironment } from "../shared/media-tools.ts";
import { ANIMATED_FPS, type ImageRequest } from "./requests.ts";

/** The longest an image may take to make before ffmpeg is killed. */
const RENDER_TIMEOUT_MS = 30_000;
const STDERR_TAIL = 2_000;

class RenderImageError extends Error {
  constructor(message: string, stderr: string) {
    super(`${message}${stderr ? `: ${stderr.trim().slice(-STDERR_TAIL)}` : ""}`);
    this.name = "RenderImageError";
  }
}

export interface RenderImageArgs {
  request: ImageRequest;
  /**
   * The published segments that hold the request's times, in order (for fMP4 the rung's init
   * segment first); piped to ffmpeg's stdin.
   */
  segments: (() => AsyncIterable<Uint8Array>)[];
  /** The segments' container: MPEG-TS, or fragmented MP4 (CMAF). */
  format: "mpegts" | "mp4";
  /** Where the request's (start) time falls, in seconds after the first segment's start. */
  offsetSeconds: number;
  /** The file to write; ffmpeg runs in its directory. */
  outFile: string;
  /** Aborted when nobody waits for the image any more: ffmpeg is killed at once. */
  signal?: AbortSignal;
}

function outputOptions(request: ImageRequest, offset: string): string[] {
  const scale = `scale=${request.width}:-2:flags=${request.kind === "thumbnail" ? "bicubic" : "lanczos"},setsar=1`;
  if (request.kind === "thumbnail") {
    return ["-ss", offset, "-frames:v", "1", "-vf", scale, "-q:v", "3", "-f", "image2", "-update", "1"];
  }
  const seconds = ((request.endMs - request.startMs) / 1000).toFixed(3);
  const frames = `fps=${ANIMATED_FPS},${scale}`;
  if (request.format === "webp") {
    return [
      "-ss",
      offset,
      "-t",
      seconds,
      "-vf",
      frames,
      "-c:v",
      "libwebp_anim",
      "-q:v",
      "70",
      "-loop",
      "0",
      "-f",
      "webp",
    ];
  }
  const palette = `${frames},split[a][b];[a]palettegen=max_colors=128[p];[b][p]paletteuse`;
  return ["-ss", offset, "-t", seconds, "-vf", palette, "-loop", "0", "-f", "gif"];
}

/**
 * Makes a thumbnail or an animated preview from published HLS segments with ffmpeg. The segments
 * are the service's own MPEG-TS or fMP4 output, yet still a tenant's pictures: ffmpeg reads them only from
 * its stdin with the demuxer named (no file or network protocol), runs without the API's
 * environment (no secrets) and is killed after RENDER_TIMEOUT_MS.
 */
export async function renderImage(args: RenderImageArgs): Promise<void> {
  const { request, outFile, signal } = args;
  signal?.throwIfAborted();
  const argv = [
    ...["-hide_banner", "-loglevel", "error", "-protocol_whitelist", "pipe", "-f", args.format, "-i", "pipe:0"],
    ...["-map", "0:v:0", "-an", "-sn", "-dn"],
    ...outputOptions(request, Math.max(0, args.offsetSeconds).toFixed(3)),
    "-y",
    path.basename(outFile),
  ];
  const child = spawn(mediaToolPath("ffmpeg"), argv, {
    cwd: path.dirname(outFile),
    env: toolEnvironment(),
    stdio: ["pipe", "ignore", "pipe"],
  });
  const stderr = stderrTail(child, STDERR_TAIL);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), RENDER_TIMEOUT_MS);
  const kill = () => child.kill("SIGKILL");
  signal?.addEventListener("abort", kill, { once: true });
  // ffmpeg stops reading once it has its frames: a closed stdin ends the feeding, not the run.
  child.stdin.on("error", () => {});
  const feeding = (async () => {
    for (const segment of args.segments) {
      for await (const chunk of segment()) {
        if (child.stdin.destroyed || child.exitCode !== null) return;
        if (!child.stdin.write(chunk)) {
          await new Promise<void>((resolve) => {
            child.stdin.once("drain", resolve);
            child.stdin.once("close", resolve);
          });
        }
      }
    }
  })().finally(() => child.stdin.end());
  // Aborted, nothing waits for a storage read that may not come back (a stalled bucket).
  feeding.catch(() => {});
  const abandoned = new Promise<void>((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
  try {
    const [code] = await Promise.all([exited, Promise.race([feeding, abandoned])]);
    signal?.throwIfAborted();
    if (code !== 0) throw new RenderImageError(`ffmpeg exited with ${code ?? "a signal"}`, stderr());
    const written = await stat(outFile).catch(() => null);
    if (!written || written.size === 0) throw new RenderImageError("ffmpeg wrote no image", stderr());
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", kill);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

export class TooBusyError extends Error {
  constructor() {
    super("Too many images are being made; try again shortly");
    this.name = "TooBusyError";
  }
}

/** The client already has its share of the renders running and waiting. */
export class OverShareError extends Error {
  constructor() {
    super("This client is already having images made; try again when they are done");
    this.name = "OverShareError";
  }
}

export interface RenderLimits {
  /** Renders at once. */
  concurrency: number;
  /** Renders that may wait for a slot; more are refused (TooBusyError). */
  maxWaiting: number;
  /** Renders one client may have running at once. */
  perClient: number;
  /** Renders one client may have waiting; more are refused (OverShareError). */
  perClientWaiting: number;
}

interface Waiter {
  client: string;
  start: () => void;
}

/**
 * Runs at most `concurrency` tasks and lets `maxWaiting` wait (more: TooBusyError), a client at most
 * `perClient` running and `perClientWaiting` waiting (more: OverShareError); a freed slot goes to the first
 * waiter under its share, so one client asking for many images cannot hold every slot. An aborted waiter leaves.
 */
export function createRenderLimiter(limits: RenderLimits) {
  let running = 0;
  const waiting: Waiter[] = [];
  const runningOf = new Map<string, number>();
  const waitingOf = new Map<string, number>();
  const add = (counts: Map<string, number>, client: string, n: number) => {
    const next = (counts.get(client) ?? 0) + n;
    if (next > 0) counts.set(client, next);
    else counts.delete(client);
  };
  const startRun = (client: string) => {
    running++;
    add(runningOf, client, 1);
  };
  const dispatch = () => {
    for (let i = 0; i < waiting.length && running < limits.concurrency; ) {
      const next = waiting[i]!;
      if ((runningOf.get(next.client) ?? 0) >= limits.perClient) {
        i++;
        continue;
      }
      waiting.splice(i, 1);
      add(waitingOf, next.client, -1);
      startRun(next.client);
      next.start();
    }
  };
  return {
    async run<T>(client: string, signal: AbortSignal, task: () => Promise<T>): Promise<T> {
      signal.throwIfAborted();
      if (running < limits.concurrency && (runningOf.get(client) ?? 0) < limits.perClient) {
        startRun(client);
      } else {
        if ((waitingOf.get(client) ?? 0) >= limits.perClientWaiting) throw new OverShareError();
        if (waiting.length >= limits.maxWaiting) throw new TooBusyError();
        await new Promise<void>((start, fail) => {
          const entry: Waiter = { client, start };
          waiting.push(entry);
          add(waitingOf, client, 1);
          signal.addEventListener(
            "abort",
            () => {
              const i = waiting.indexOf(entry);
              if (i === -1) return;
              waiting.splice(i, 1);
              add(waitingOf, client, -1);
              fail(signal.reason);
            },
            { once: true },
          );
        });
      }
      try {
        return await task();
      } finally {
        running--;
        add(runningOf, client, -1);
        dispatch();
      }
    },
  };
}
