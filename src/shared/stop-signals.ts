/** The signals that stop either program: a container's stop and a terminal's Ctrl-C. */
export const STOP_SIGNALS = ["SIGTERM", "SIGINT"] as const;

export interface StopSignalOptions {
  log: { warn(message: string): void };
  /** Whether there are jobs to hand back at the second signal; when not, the second signal exits. */
  canHandBack?: () => boolean;
  /** Hands the jobs in flight back now instead of waiting out their grace; the ordered stop goes on. */
  handBack: () => void;
  /** The line the second signal logs, naming what is handed back and where it resumes. */
  handBackLine: (reason: string) => string;
  /** After the second signal, how long the rest of the stop may take before the process exits anyway. */
  hurriedExitMs: number;
  /** Tests replace it; the programs exit. */
  exit?: (code: number) => void;
}

export interface StopSignals {
  /** Whether the first signal (or another reason to stop) has come. */
  readonly stopping: boolean;
  /**
   * One reason to stop: the first runs `stop`, the second hands the jobs back now (or exits when there
   * are none), a third exits at once.
   */
  received(reason: string, stop: () => void): void;
}

/**
 * The shutdown both programs give their signals: the first stops in order, the second hands back the
 * jobs in flight (they resume elsewhere, or on the next start) and leaves the stop `hurriedExitMs` to
 * end, a third exits. One place, so the API and its worker answer a repeated Ctrl-C the same way.
 */
export function createStopSignals(options: StopSignalOptions): StopSignals {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping = false;
  let hurried = false;
  return {
    get stopping() {
      return stopping;
    },
    received(reason, stop) {
      if (!stopping) {
        stopping = true;
        stop();
        return;
      }
      if (hurried || !(options.canHandBack?.() ?? true)) {
        options.log.warn("another signal: exiting now");
        exit(1);
        return;
      }
      hurried = true;
      options.log.warn(options.handBackLine(reason));
      options.handBack();
      setTimeout(() => {
        options.log.warn("shutdown still not done: exiting now");
        exit(1);
      }, options.hurriedExitMs).unref();
    },
  };
}
