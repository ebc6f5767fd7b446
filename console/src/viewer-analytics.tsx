import { useEffect, useState } from "preact/hooks";
import { formatDuration, formatPercent, sharePercents } from "./format.ts";
import { type ResultOf, request, subscribe } from "./graphql.ts";
import { TenantAnalyticsQuery, VideoAnalyticsQuery, ViewersNowSubscription } from "./operations.ts";

type Figures = ResultOf<typeof TenantAnalyticsQuery>["tenantAnalytics"];
type Point = Figures["timeline"][number];

const DAYS = 30;
const lastDays = () => {
  const to = new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000);
  return { from: new Date(to.getTime() - DAYS * 86_400_000).toISOString(), to: to.toISOString() };
};

/** What each quality figure means, and where good turns bad (the peers' and viewers' usual marks). */
function verdict(kind: "startup" | "rebuffer" | "failure", value: number | null): { text: string; cls: string } {
  if (value === null) return { text: "no data yet", cls: "muted" };
  const marks: Record<typeof kind, { good: number; bad: number }> = {
    startup: { good: 1000, bad: 3000 },
    rebuffer: { good: 0.01, bad: 0.05 },
    failure: { good: 0.01, bad: 0.05 },
  };
  const { good, bad } = marks[kind];
  if (value <= good) return { text: "good", cls: "good" };
  if (value >= bad) return { text: "bad: viewers leave", cls: "bad" };
  return { text: "fair", cls: "fair" };
}

const ms = (value: number | null) => (value === null ? "–" : `${(value / 1000).toFixed(2)} s`);

/** Bars of one value per day, as a small SVG: no chart library. */
function Bars({
  points,
  value,
  label,
  format,
}: {
  points: Point[];
  value: (p: Point) => number | null;
  label: string;
  format: (n: number) => string;
}) {
  const byDay = new Map(points.map((p) => [p.at.slice(0, 10), p]));
  const { from } = lastDays();
  const days = Array.from({ length: DAYS }, (_, i) =>
    new Date(Date.parse(from) + i * 86_400_000).toISOString().slice(0, 10),
  );
  const values = days.map((d) => {
    const p = byDay.get(d);
    return p ? value(p) : null;
  });
  const known = values.filter((v): v is number => v !== null);
  const max = Math.max(0, ...known);
  // Bars of a chart whose values are all 0 stay flat; the caption says the real top, not the scale's.
  const scale = max || 1;
  const w = 6;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${DAYS * w} 40`} width="100%" height="60" role="img" aria-label={label}>
        {values.map((v, i) =>
          v === null ? null : (
            <rect key={days[i]} x={i * w + 1} y={40 - (v / scale) * 38} width={w - 2} height={(v / scale) * 38}>
              <title>{`${days[i]}: ${format(v)}`}</title>
            </rect>
          ),
        )}
      </svg>
      <figcaption>
        {label} ({known.length ? `max ${format(max)}` : "no data"})
      </figcaption>
    </figure>
  );
}

/** The three renditions played most, and the others together: percents that add up to 100. */
function topRenditions(renditions: Figures["topRenditions"]): string {
  const percents = sharePercents(renditions.map((r) => r.share));
  const shown = renditions.slice(0, 3).map((r, i) => `${r.height}p ${percents[i]}%`);
  const others = percents.slice(3).reduce((a, b) => a + b, 0);
  return [...shown, ...(renditions.length > 3 ? [`others ${others}%`] : [])].join(", ");
}

function AnalyticsFigures({ figures, testId }: { figures: Figures; testId: string }) {
  const startup = verdict("startup", figures.startupTimeP95Ms);
  const rebuffer = verdict("rebuffer", figures.views ? figures.rebufferRatio : null);
  const failure = verdict("failure", figures.views ? figures.failureRate : null);
  return (
    <>
      <dl class="analytics-figures" data-testid={testId}>
        <dt>Views</dt>
        <dd data-testid="analytics-views">{figures.views}</dd>
        <dt>Unique viewers</dt>
        <dd>{figures.uniqueViewers}</dd>
        <dt>Watch time</dt>
        <dd>{formatDuration(figures.watchTimeSeconds)}</dd>
        <dt title="From play to the first frame. Under 1 s is good; past 3 s viewers start leaving.">
          Startup p50 / p95
        </dt>
        <dd>
          {ms(figures.startupTimeP50Ms)} / {ms(figures.startupTimeP95Ms)}{" "}
          <span class={startup.cls}>({startup.text})</span>
        </dd>
        <dt title="Time stalled over time watching. Under 1 % is good, over 5 % is bad.">Rebuffering</dt>
        <dd>
          {formatPercent(figures.rebufferRatio)} in {figures.rebufferCount} stalls{" "}
          <span class={rebuffer.cls}>({rebuffer.text})</span>
        </dd>
        <dt title="Views that ended in a playback error.">Failures</dt>
        <dd>
          {formatPercent(figures.failureRate)} <span class={failure.cls}>({failure.text})</span>
        </dd>
        <dt>Completion</dt>
        <dd>{formatPercent(figures.completionRate)}</dd>
        <dt>Top renditions</dt>
        <dd>{figures.topRenditions.length ? topRenditions(figures.topRenditions) : "–"}</dd>
      </dl>
      <Bars
        points={figures.timeline}
        value={(p) => p.views}
        label="Views per day"
        format={(n) => String(Math.round(n))}
      />
      <Bars
        points={figures.timeline}
        value={(p) => p.startupTimeP95Ms}
        label="Startup p95 per day"
        format={(n) => ms(n)}
      />
      <Bars
        points={figures.timeline}
        value={(p) => p.rebufferRatio}
        label="Rebuffering per day"
        format={formatPercent}
      />
    </>
  );
}

/** A video's viewer analytics over the last 30 days, and its viewers now (live). */
export function VideoAnalytics({ videoId }: { videoId: string }) {
  const [figures, setFigures] = useState<Figures | null>(null);
  const [now, setNow] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    request(VideoAnalyticsQuery, { id: videoId, ...lastDays() })
      .then((data) => setFigures(data.video?.analytics ?? null))
      .catch((err: Error) => setError(err.message));
    return subscribe(ViewersNowSubscription, { videoId }, { next: (data) => setNow(data.viewersNow) });
  }, [videoId]);
  return (
    <section aria-labelledby="analytics-title" class="analytics">
      <h2 id="analytics-title">Viewers, last {DAYS} days</h2>
      <p>
        Watching now: <strong data-testid="viewers-now">{now ?? "–"}</strong>
      </p>
      {error && <p class="error">{error}</p>}
      {figures && <AnalyticsFigures figures={figures} testId="video-analytics" />}
    </section>
  );
}

/** All the tenant's videos over the last 30 days. */
export function TenantAnalytics() {
  const [figures, setFigures] = useState<Figures | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    request(TenantAnalyticsQuery, lastDays())
      .then((data) => setFigures(data.tenantAnalytics))
      .catch((err: Error) => setError(err.message));
  }, []);
  return (
    <details class="analytics">
      <summary>Viewers of all videos, last {DAYS} days</summary>
      {error && <p class="error">{error}</p>}
      {figures && <AnalyticsFigures figures={figures} testId="tenant-analytics" />}
    </details>
  );
}
