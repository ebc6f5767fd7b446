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
