import ffmpeg from "fluent-ffmpeg";
import { mediaToolPath } from "../../src/shared/media-tools.ts";
import { ffmpegCpuSeconds } from "../metrics.ts";
import { abortError, createStderrTail, MediaError, redactUrls, withoutLogPrefix } from "./errors.ts";
import { mediaToolEnv } from "./tool-environment.ts";
import { diesWithWorker } from "./tool-process.ts";

const FFMPEG = mediaToolPath("ffmpeg");

/** One input of an ffmpeg run: what `-i` opens, and the options placed before it. */
export interface FfmpegInput {
  source: string;
  options: string[];
}

/** One output of an ffmpeg run: the file it writes (relative to the run's cwd, or `-`), and its options. */
export interface FfmpegOutput {
  target: string;
  options: string[];
}

/** What ffmpeg's latest status line says. */
export interface FfmpegStatus {
  /** Media time written so far, counted from where this run started. */
  outTimeSeconds: number;
  /** Frames per second ffmpeg reports. */
  fps: number | null;
}

export interface FfmpegRun {
  inputs: FfmpegInput[];
  /** A `-filter_complex` graph feeding the outputs. */
  filterGraph?: string;
  outputs: FfmpegOutput[];
  /** ffmpeg's working directory: relative paths in the run are resolved here. */
  cwd: string;
  /** Kills ffmpeg (SIGKILL); the run then rejects with an AbortError. */
  signal?: AbortSignal;
  /** Called once ffmpeg has started. */
  onStart?: () => void;
  /** Runs ffmpeg at this nice value (1 to 19: after the worker's other processes). Default: the worker's. */
  niceness?: number;
  /** Called for every status line; a caller stores the figures and samples them on its own timer. */
  onStatus?: (status: FfmpegStatus) => void;
  /** Called for every stderr line (a filter's report, such as loudnorm's measurement). */
  onStderr?: (line: string) => void;
}

/**
 * Runs ffmpeg with its cwd in the job's work dir, no stdin, the media tools' environment, dying
 * with the worker. Resolves with the command line (signed URLs redacted). A failure rejects with
 * a MediaError carrying that command line, ffmpeg's exit code and the tail of its stderr.
 */
export function runFfmpeg(run: FfmpegRun): Promise<string> {
  const command = ffmpeg({ cwd: run.cwd, stdoutLines: 50 });
  // Global options, which ffmpeg reads wherever they stand: before the first `-i` when there is one.
  // -benchmark: ffmpeg ends with its own CPU time (`bench: utime=… stime=…`), counted by the metrics.
  const global = ["-nostdin", "-hide_banner", "-benchmark"];
  run.inputs.forEach((input, i) => {
    command.input(input.source);
    const options = i === 0 ? [...global, ...input.options] : input.options;
    if (options.length > 0) command.inputOptions(...options);
  });
  if (run.filterGraph !== undefined) command.complexFilter(run.filterGraph);
  if (run.niceness !== undefined) command.renice(run.niceness);
  const last = run.outputs.length - 1;
  run.outputs.forEach((output, i) => {
    const options = i === last && run.inputs.length === 0 ? [...output.options, ...global] : output.options;
    command.output(output.target);
    if (options.length > 0) command.outputOptions(...options);
  });
  if (run.onStatus) {
    const onStatus = run.onStatus;
    // Read from stderr: fluent-ffmpeg's 'progress' event would first run its own ffprobe on input 0,
    // outside the whitelists (and a graph of generated sources has no input 0).
    command.on("stderr", (line: string) => {
      const outTimeSeconds = timemarkSeconds(/\btime=(\S+)/.exec(line)?.[1]);
      if (outTimeSeconds === null) return;
      const fps = Number(/\bfps=\s*([\d.]+)/.exec(line)?.[1]);
      onStatus({ outTimeSeconds, fps: Number.isFinite(fps) ? fps : null });
    });
  }
  if (run.onStderr) command.on("stderr", run.onStderr);
  return runCommand(command, run.signal, run.onStart);
}

/**
 * fluent-ffmpeg's one spawn would hand down the worker's whole environment and outlive a killed worker: this
 * command's spawns get the media tools' environment and die with the worker (diesWithWorker). Its capability
 * check (`ffmpeg -formats`, `-encoders` before a process's first command) is skipped: ffmpeg refuses an unknown
 * `-f` or encoder itself, with the reason in the error, so the check only cost two ffmpeg starts per process.
 */
function asMediaTool(command: ffmpeg.FfmpegCommand): void {
  const spawnable = command as unknown as {
    _spawnFfmpeg: (args: string[], options: object, ...callbacks: unknown[]) => void;
    _getFfmpegPath: (callback: (err: Error | null, path?: string) => void) => void;
    _checkCapabilities: (callback: (err?: Error) => void) => void;
    availableEncoders: (callback: (err: Error | null, encoders: Record<string, never>) => void) => void;
  };
  spawnable._checkCapabilities = (callback) => callback();
  spawnable.availableEncoders = (callback) => callback(null, {});
  const spawnFfmpeg = spawnable._spawnFfmpeg;
  const launcher = diesWithWorker(FFMPEG, []);
  spawnable._getFfmpegPath = (callback) => callback(null, launcher.file);
  spawnable._spawnFfmpeg = function (this: unknown, args, options, ...callbacks) {
    const env = typeof options === "object" ? { ...options, env: mediaToolEnv() } : options;
    return spawnFfmpeg.call(this, [...launcher.args, ...args], env, ...callbacks);
  };
}

/** Runs a prepared command; resolves with its command line, kills it with SIGKILL on abort. */
function runCommand(
  command: ffmpeg.FfmpegCommand,
  signal: AbortSignal | undefined,
  onStart?: () => void,
): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    let commandLine = "";
    let spawned = false;
    let diskFull = false;
    const stderrTail = createStderrTail();
    const onAbort = () => {
      // Before 'start' there is no process yet; the 'start' handler kills it then.
      if (spawned) command.kill("SIGKILL");
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const settle = () => signal?.removeEventListener("abort", onAbort);

    command.on("start", (line: string) => {
      spawned = true;
      commandLine = redactUrls(line);
      if (signal?.aborted) {
        command.kill("SIGKILL");
        return;
      }
      onStart?.();
    });
    command.on("stderr", (line: string) => {
      // -benchmark's figures are for the metrics, not diagnostics: they stay out of errors.
      if (BENCH_LINE.test(line)) {
        const cpu = BENCH_CPU.exec(line);
        if (cpu) ffmpegCpuSeconds.inc(Number(cpu[1]) + Number(cpu[2]));
        return;
      }
      if (stderrTail.add(line) && DISK_FULL.test(line)) diskFull = true;
    });
    command.on("error", (err: Error) => {
      settle();
      if (signal?.aborted) return reject(abortError(signal));
      const exitCode = exitCodeOf(err);
      const what = exitCode === null ? err.message.replace(/:.*$/s, "") : `ffmpeg exited with code ${exitCode}`;
      // A full disk is the reason even where ffmpeg's last lines are its encoders' statistics (an
      // image output, such as a storyboard's sheets, fails the run where the segment muxer carries on).
      const reason = diskFull ? DISK_FULL_REASON : (errorSummary(stderrTail.lines()) ?? "no error message");
      const message = spawned ? `${what}: ${reason}` : `ffmpeg could not start: ${err.message}`;
      const details = { command: commandLine || undefined, stderrTail: stderrTail.text(), exitCode };
      reject(new MediaError(message, { retryable: true, ...details, cause: err }));
    });
    command.on("end", () => {
      settle();
      if (signal?.aborted) return reject(abortError(signal));
      if (diskFull) {
        // The HLS muxer logs a failed segment or playlist write and carries on to exit 0.
        const details = { command: commandLine || undefined, stderrTail: stderrTail.text(), exitCode: 0 };
        const message = `ffmpeg ${DISK_FULL_REASON}`;
        return reject(new MediaError(message, { retryable: true, ...details }));
      }
      resolve(commandLine);
    });
    asMediaTool(command);
    command.run();
  });
}

const BENCH_LINE = /^\s*bench: /;
const BENCH_CPU = /^\s*bench: utime=([\d.]+)s stime=([\d.]+)s/;
const DISK_FULL = /No space left on device|Disk quota exceeded/i;
const DISK_FULL_REASON = "ran out of disk space in the work dir (No space left on device)";

/** ffmpeg ends with its reason in unindented lines; indented ones describe the input. */
function errorSummary(stderrTail: readonly string[]): string | null {
  const reasons = stderrTail.filter((l) => !/^\s/.test(l)).slice(-2);
  return reasons.length > 0 ? reasons.map(withoutLogPrefix).join(" ") : null;
}

function exitCodeOf(err: Error): number | null {
  const match = /exited with code (\d+)/.exec(err.message);
  return match ? Number(match[1]) : null;
}

/** `00:01:02.50` → 62.5; null for `N/A` and other non-times. */
function timemarkSeconds(timemark: string | undefined): number | null {
  const match = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(timemark ?? "");
  if (!match) return null;
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}
