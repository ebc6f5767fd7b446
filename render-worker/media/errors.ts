/** What a failed media step tells the job's failure event. */
export interface MediaErrorDetails {
  /** False when retrying cannot help (the source is not a video, say). */
  retryable: boolean;
  /** The command line of the process that failed. */
  command?: string;
  /** The last lines of that process's stderr, progress lines left out. */
  stderrTail?: string;
  exitCode?: number | null;
  cause?: unknown;
}

/**
 * A probe, encode or poster step that failed. The message is readable by users; the command,
 * stderr tail and exit code are for operators. The worker turns it into a `job.failed` event.
 */
export class MediaError extends Error {
  retryable: boolean;
  command?: string;
  stderrTail?: string;
  exitCode?: number | null;

  constructor(message: string, details: MediaErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "MediaError";
    this.retryable = details.retryable;
    if (details.command !== undefined) this.command = details.command;
    if (details.stderrTail !== undefined) this.stderrTail = details.stderrTail;
    if (details.exitCode !== undefined) this.exitCode = details.exitCode;
  }
}

/** The error a media step rejects with when its abort signal fired. */
export function abortError(signal: AbortSignal): DOMException {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new DOMException(`The media step was canceled${reason}`, "AbortError");
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === "AbortError";
}

/** Signed URLs (a GCS source) must not end up in job errors and logs: drop their query strings. */
export function redactUrls(text: string): string {
  return text.replace(/(https?:\/\/[^\s?"']+)\?[^\s"']*/g, "$1?…");
}

const STDERR_TAIL_LINES = 20;

/** Whether a line of ffmpeg's or ffprobe's stderr says something: not blank, not a `frame=` status line. */
function isLogLine(line: string): boolean {
  return line.trim() !== "" && !/^\s*(frame|size)=/.test(line);
}

/** The last log lines of a running tool's stderr, for `MediaError.stderrTail`. */
export interface StderrTail {
  /** Keeps the line unless it is blank or a status line; says whether it kept it. */
  add(line: string): boolean;
  lines(): readonly string[];
  text(): string | undefined;
}

export function createStderrTail(): StderrTail {
  const kept: string[] = [];
  return {
    add(line) {
      if (!isLogLine(line)) return false;
      kept.push(line);
      if (kept.length > STDERR_TAIL_LINES) kept.shift();
      return true;
    },
    lines: () => kept,
    text: () => kept.join("\n") || undefined,
  };
}

/** The last log lines of a finished tool's whole stderr. */
export function stderrTailOf(stderr: string): string | undefined {
  return (
    stderr
      .split(/\r\n|\r|\n/)
      .filter(isLogLine)
      .slice(-STDERR_TAIL_LINES)
      .join("\n") || undefined
  );
}

/** A log line without the `[h264_nvenc @ 0x55d…]` prefix that names the component that wrote it. */
export function withoutLogPrefix(line: string): string {
  return line.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "");
}
