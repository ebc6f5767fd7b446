import { useEffect, useMemo, useState } from "preact/hooks";
import type { ResultOf } from "./graphql.ts";
import type { VideoQueuePositionQuery } from "./operations.ts";

export type QueuePosition = NonNullable<
  NonNullable<ResultOf<typeof VideoQueuePositionQuery>["video"]>["queuePosition"]
>;

const ordinals = new Intl.PluralRules("en", { type: "ordinal" });
const SUFFIX: Record<string, string> = { one: "st", two: "nd", few: "rd", other: "th" };

/** 1 → "1st", 2 → "2nd", 3 → "3rd", 11 → "11th", 22 → "22nd". */
function ordinal(n: number): string {
  return `${n}${SUFFIX[ordinals.select(n)] ?? "th"}`;
}

/** "~20 s", "~3 min", "~2 h". */
function formatWait(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `~${s} s`;
  if (s < 3600) return `~${Math.round(s / 60)} min`;
  return `~${Math.round(s / 360) / 10} h`;
}

/**
 * "3rd in line, ~20 s": a queued video's place, counting down between QueuePositionEvents. The
 * countdown runs from `estimatedStartSeconds` as it was received (not from `estimatedStartAt`
 * against the browser's clock, which may be off from the server's).
 */
export function QueuePlace({ position }: { position: QueuePosition }) {
  const startsAt = useMemo(
    () => (position.estimatedStartSeconds == null ? null : Date.now() + position.estimatedStartSeconds * 1000),
    [position],
  );
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (startsAt == null) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [startsAt]);
  const left = startsAt == null ? null : (startsAt - now) / 1000;
  const wait = left == null ? "no worker is serving its queue yet" : left >= 1 ? formatWait(left) : "starting soon";
  const title =
    position.estimatedStartAt && left != null
      ? `${position.jobsAhead} jobs ahead · ${position.slots} worker slots · expected to start at ` +
        new Date(startsAt ?? position.estimatedStartAt).toLocaleTimeString()
      : `${position.jobsAhead} jobs ahead`;
  return (
    <span class="queue-place" data-testid="queue-position" data-position={position.position} title={title}>
      {ordinal(position.position)} in line, {wait}
    </span>
  );
}
