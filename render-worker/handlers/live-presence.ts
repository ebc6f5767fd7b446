import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { LIVE_PRESENCE_HEADER } from "../../src/protocol/live-messages.ts";
import { log } from "../log.ts";

/** Between tries while the feed's API instance does not hold it (restarting, or not adopted yet). */
const RETRY_MS = 1000;
/**
 * The most the run's last word waits for an answer: past it the hold closes unannounced, which the
 * API takes for the run's death (a takeover 3 s later, if the run's end is not applied by then).
 * Generous, as a loaded API answers late; an API that is gone refuses at once.
 */
const DONE_TIMEOUT_MS = 10_000;

/**
 * Holds the run's presence on its broadcast's feed while it lives (LIVE_PRESENCE_HEADER): the API
 * holding the feed sees the run die (its worker killed, its run stopped) by the connection closing,
 * after the feed's end too, when ffmpeg's own connection says nothing any more, and takes the
 * broadcast over with the tail it kept. `done` is the run ending as it reports (its end event is
 * on its way): it says so first, so that close is no death. Held again while the run lives if the
 * connection breaks (the API instance restarted).
 */
export function holdPresence(feedUrl: string, signal: AbortSignal): { done(): Promise<void> } {
  const id = randomUUID();
  const held = new AbortController();
  const stop = AbortSignal.any([signal, held.signal]);
  const holding = (async () => {
    while (!stop.aborted) {
      try {
        const res = await fetch(feedUrl, { headers: { [LIVE_PRESENCE_HEADER]: id }, signal: stop });
        const reader = res.body?.getReader();
        while (reader && !(await reader.read()).done);
      } catch (err) {
        if (!stop.aborted) log.debug("live: the run's hold on its feed broke", { err: String(err) });
      }
      await sleep(RETRY_MS, undefined, { signal: stop }).catch(() => {});
    }
  })();
  return {
    async done() {
      await fetch(feedUrl, {
        method: "POST",
        headers: { [LIVE_PRESENCE_HEADER]: id },
        signal: AbortSignal.timeout(DONE_TIMEOUT_MS),
      }).catch((err) => log.debug("live: the run's end could not be told to its feed", { err: String(err) }));
      held.abort();
      await holding;
    },
  };
}
