import { type FSWatcher, mkdirSync, watch } from "node:fs";
import path from "node:path";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";

/** How often the work dir is looked at when no change was seen: a backstop for a missed file event. */
const BACKSTOP_INTERVAL_MS = 1000;

export interface PassSchedule {
  /** Watches the rungs' directories and runs a first pass; a second call does nothing. */
  start(): void;
  /** Stops the watches and the timer and waits for the pass in flight. */
  halt(): Promise<void>;
  /** Set when a pass failed: no pass runs after it. */
  readonly failure: { error: unknown } | null;
}

/**
 * Runs `pass` one at a time: whenever ffmpeg replaces the list in a rung's directory (a file
 * event; a slow timer is the backstop), and once more right after a pass that a change came during.
 */
export function schedulePasses(opts: {
  workDir: string;
  rungNames: string[];
  pass: () => Promise<void>;
  intervalMs?: number;
  onError?: (err: unknown) => void;
}): PassSchedule {
  let stopped = false;
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let watchers: FSWatcher[] = [];
  let passInFlight: Promise<void> | null = null;
  /** A change was seen while a pass ran: another pass follows it at once. */
  let passAgain = false;
  let failure: { error: unknown } | null = null;

  /** Runs a pass now, or right after the one in flight. */
  function publishSoon(): void {
    if (stopped) return;
    if (passInFlight) {
      passAgain = true;
      return;
    }
    clearTimeout(timer);
    passInFlight = opts
      .pass()
      .catch((error: unknown) => {
        failure = { error };
        stopped = true;
        opts.onError?.(error);
      })
      .finally(() => {
        passInFlight = null;
        if (stopped) return;
        if (passAgain) {
          passAgain = false;
          publishSoon();
        } else {
          timer = setTimeout(publishSoon, opts.intervalMs ?? BACKSTOP_INTERVAL_MS);
        }
      });
  }

  /** Watches every rung's directory: ffmpeg renames a rung's list into place once per segment. */
  function watchRungs(): void {
    for (const name of opts.rungNames) {
      const dir = path.join(opts.workDir, name);
      try {
        mkdirSync(dir, { recursive: true });
        const watcher = watch(dir, (_event, file) => {
          if (file === RUNG_PLAYLIST) publishSoon();
        });
        // The backstop timer still finds what a failed watch would have reported.
        watcher.on("error", () => watcher.close());
        watchers.push(watcher);
      } catch {
        // Same: the timer publishes it.
      }
    }
  }

  return {
    start() {
      if (stopped || started) return;
      started = true;
      watchRungs();
      publishSoon();
    },
    async halt() {
      stopped = true;
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      watchers = [];
      await passInFlight;
    },
    get failure() {
      return failure;
    },
  };
}
