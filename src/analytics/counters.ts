import type { BeaconEvent } from "../shared/analytics-beacons.ts";
import { histogramQuantile, STARTUP_BUCKET_COUNT } from "./startup-histogram.ts";

/**
 * The analytics' counters, declared once (docs/development.md, "How do I add an analytics figure?"):
 * which beacon event feeds each, how it sums, and its columns. The ingest's sums (`batchFigures`),
 * the buffer's deltas, the write statement (`beacon-write.ts`) and the reports' SELECT (`figures.ts`)
 * are made from it; the GraphQL fields from `FIGURES` below.
 */

type EventType = BeaconEvent["type"];
type EventOf<T extends EventType> = Extract<BeaconEvent, { type: T }>;

/**
 * Added up over a view's events, each event of its type adding `amount`: a column of its name on the
 * view row (`AnalyticsView`) and on both hours (`AnalyticsHour`, `AnalyticsTenantHour`), of `sql` type.
 */
type SumCounter = {
  [T in EventType]: { kind: "sum"; event: T; amount: (e: EventOf<T>) => number; sql: "int" | "bigint" };
}[EventType];

/**
 * Views counted once: the first event of its type that `counts` marks its view, whose row keeps the
 * mark in `viewColumn` (boolean) and, with `detail`, what that first event said (a text column); both
 * hours count the marked views in a column of the counter's name (int).
 */
type ViewCounter = {
  [T in EventType]: {
    kind: "view";
    event: T;
    counts: (e: EventOf<T>) => boolean;
    viewColumn: string;
    detail?: { column: string; of: (e: EventOf<T>) => string };
  };
}[EventType];

/**
 * A view's first startup time: the view row's `startupMs`, the hours' `startupHistogram` (views per
 * bucket, `startup-histogram.ts`). One of its kind.
 */
type StartupCounter = { kind: "startup"; event: "startup" };

/** Counted when a view starts (`startView`, `ingest.ts`), not from beacons: a column of its name on both hours (int). */
type ViewStartCounter = { kind: "viewStart" };

type Counter = SumCounter | ViewCounter | StartupCounter | ViewStartCounter;

export const COUNTERS = {
  views: { kind: "viewStart" },
  uniqueViewers: { kind: "viewStart" },
  startupHistogram: { kind: "startup", event: "startup" },
  watchMs: { kind: "sum", event: "watch", amount: (e) => e.watchedMs, sql: "bigint" },
  rebufferCount: { kind: "sum", event: "rebuffer", amount: () => 1, sql: "int" },
  rebufferMs: { kind: "sum", event: "rebuffer", amount: (e) => e.durationMs, sql: "bigint" },
  renditionSwitches: { kind: "sum", event: "rendition", amount: () => 1, sql: "int" },
  failedViews: {
    kind: "view",
    event: "failure",
    counts: (e) => e.fatal,
    viewColumn: "failed",
    detail: { column: "failureCode", of: (e) => e.code },
  },
  completedViews: { kind: "view", event: "completed", counts: () => true, viewColumn: "completed" },
} as const satisfies Record<string, Counter>;

/**
 * Beacon events that feed no counter, and what takes them instead. A beacon event must feed a counter
 * or be listed here: tsc refuses one that does neither (`EVERY_EVENT_TAKEN` below).
 */
export const UNCOUNTED_EVENTS = {
  liveLatency: "the operators' live latency metric (ingest-thread.ts), not stored",
} as const satisfies Partial<Record<EventType, string>>;

type Counters = typeof COUNTERS;
type NameOfKind<K extends Counter["kind"]> = {
  [N in keyof Counters]: Counters[N]["kind"] extends K ? N : never;
}[keyof Counters];
export type SumCounterName = NameOfKind<"sum">;
export type ViewCounterName = NameOfKind<"view">;
/** The counters an hour's row adds up from beacons (the views' starts and the histogram aside). */
export type HourCounterName = SumCounterName | ViewCounterName;

type CountedEvent = { [N in keyof Counters]: Counters[N] extends { event: infer T } ? T : never }[keyof Counters];
type UntakenEvent = Exclude<EventType, CountedEvent | keyof typeof UNCOUNTED_EVENTS>;
/** tsc names here a beacon event that no counter takes and `UNCOUNTED_EVENTS` does not list. */
const EVERY_EVENT_TAKEN: [UntakenEvent] extends [never] ? true : { untaken: UntakenEvent } = true;
void EVERY_EVENT_TAKEN;

const entriesOf = <K extends keyof Counters>(kind: Counter["kind"]) =>
  (Object.keys(COUNTERS) as (keyof Counters)[]).filter((n) => COUNTERS[n].kind === kind) as K[];

export const SUM_COUNTERS = entriesOf<SumCounterName>("sum");
export const VIEW_COUNTERS = entriesOf<ViewCounterName>("view");
export const HOUR_COUNTERS: readonly HourCounterName[] = [...SUM_COUNTERS, ...VIEW_COUNTERS];
export type ViewStartCounterName = NameOfKind<"viewStart">;
const VIEW_START_COUNTERS = entriesOf<ViewStartCounterName>("viewStart");

/** Every counter with a column of its name on both hours (the startup histogram aside). */
export const ROLLUP_COUNTERS: readonly (HourCounterName | ViewStartCounterName)[] = [
  ...VIEW_START_COUNTERS,
  ...HOUR_COUNTERS,
];

/** The SQL type of a counter's column on the hours. */
export const hourColumnType = (name: HourCounterName | ViewStartCounterName): "int" | "bigint" => {
  const counter: Counter = COUNTERS[name];
  return counter.kind === "sum" ? counter.sql : "int";
};

/** What a period's hours add up to (`figures.ts` reads them; `FIGURES` are made from them). */
export type CounterSums = Record<HourCounterName | ViewStartCounterName, number> & {
  /** Views per startup-time bucket (`startupBucket`). */
  histogram: number[];
};

interface Figure {
  type: "int" | "float";
  nullable?: true;
  description: string;
  /** The counters it is made from: the round-trip test checks every counter feeds one. */
  reads: readonly (keyof Counters)[];
  value: (s: CounterSums) => number | null;
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);

/** The figures of a period and of each point of its timeline, in GraphQL (`ViewerAnalytics`, `AnalyticsPoint`). */
export const FIGURES = {
  views: { type: "int", description: "Views started.", reads: ["views"], value: (s) => s.views },
  uniqueViewers: {
    type: "int",
    description:
      "Distinct viewers per video per UTC day (a salted daily hash of address and user agent), summed over days and videos.",
    reads: ["uniqueViewers"],
    value: (s) => s.uniqueViewers,
  },
  watchTimeSeconds: {
    type: "float",
    description: "Content played.",
    reads: ["watchMs"],
    value: (s) => s.watchMs / 1000,
  },
  startupTimeP50Ms: {
    type: "float",
    nullable: true,
    description:
      "Median time from a view's start to its first frame (ms; under 1,000 is good, over 3,000 viewers leave). Null: no startup reported.",
    reads: ["startupHistogram"],
    value: (s) => histogramQuantile(s.histogram, 0.5),
  },
  startupTimeP95Ms: {
    type: "float",
    nullable: true,
    description: "95th percentile of startup time (ms): the slow views.",
    reads: ["startupHistogram"],
    value: (s) => histogramQuantile(s.histogram, 0.95),
  },
  rebufferCount: {
    type: "int",
    description: "Stalls for lack of data.",
    reads: ["rebufferCount"],
    value: (s) => s.rebufferCount,
  },
  rebufferSeconds: {
    type: "float",
    description: "Time spent stalled.",
    reads: ["rebufferMs"],
    value: (s) => s.rebufferMs / 1000,
  },
  rebufferRatio: {
    type: "float",
    description: "Time stalled over time watching or stalled, 0..1 (under 0.01 is good, over 0.05 is bad).",
    reads: ["rebufferMs", "watchMs"],
    value: (s) => ratio(s.rebufferMs, s.watchMs + s.rebufferMs),
  },
  renditionSwitches: {
    type: "int",
    description: "Rendition changes.",
    reads: ["renditionSwitches"],
    value: (s) => s.renditionSwitches,
  },
  failureRate: {
    type: "float",
    description: "Views that ended in a fatal playback error, over views, 0..1.",
    reads: ["failedViews", "views"],
    value: (s) => ratio(s.failedViews, s.views),
  },
  completionRate: {
    type: "float",
    description: "Views played to the end, over views, 0..1.",
    reads: ["completedViews", "views"],
    value: (s) => ratio(s.completedViews, s.views),
  },
} as const satisfies Record<string, Figure>;

export type FigureName = keyof typeof FIGURES;

/** The figures as GraphQL gives them: a nullable one may be null. */
export type Figures = {
  [N in FigureName]: (typeof FIGURES)[N] extends { nullable: true } ? number | null : number;
};

export function figuresOf(s: CounterSums): Figures {
  return Object.fromEntries(
    (Object.keys(FIGURES) as FigureName[]).map((name) => [name, FIGURES[name].value(s)]),
  ) as Figures;
}

type ReadCounter = (typeof FIGURES)[FigureName]["reads"][number];
type UnreadCounter = Exclude<keyof Counters, ReadCounter>;
/** tsc names here a counter that no figure reads. */
const EVERY_COUNTER_READ: [UnreadCounter] extends [never] ? true : { unread: UnreadCounter } = true;
void EVERY_COUNTER_READ;

/** Zero of every counter. */
export function emptyCounterSums(): CounterSums {
  const sums = Object.fromEntries(ROLLUP_COUNTERS.map((n) => [n, 0]));
  return { ...(sums as Omit<CounterSums, "histogram">), histogram: new Array<number>(STARTUP_BUCKET_COUNT).fill(0) };
}
