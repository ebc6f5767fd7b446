import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COUNTERS, FIGURES, type FigureName, UNCOUNTED_EVENTS } from "../src/analytics/counters.ts";
import { ANALYTICS_PATHS, type BeaconEvent } from "../src/shared/analytics-beacons.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { createUpload } from "./support/uploads.ts";

type EventType = BeaconEvent["type"];

/** One event of every type of the beacon format: tsc asks for one more when the format gains a type. */
const SAMPLES: { [T in EventType]: Extract<BeaconEvent, { type: T }> } = {
  startup: { type: "startup", at: 900, startupMs: 900 },
  rendition: { type: "rendition", at: 900, height: 720 },
  watch: { type: "watch", at: 10_900, height: 720, watchedMs: 10_000 },
  rebuffer: { type: "rebuffer", at: 11_500, durationMs: 400 },
  failure: { type: "failure", at: 12_000, fatal: true, code: "fragLoadError" },
  completed: { type: "completed", at: 60_000 },
  liveLatency: { type: "liveLatency", at: 20_000, latencyMs: 2150 },
};
const EVENT_TYPES = Object.keys(SAMPLES) as EventType[];
const FIGURE_NAMES = Object.keys(FIGURES) as FigureName[];
/** The beacon event each counter is fed by (none: counted when a view starts). */
const eventOf = (counter: keyof typeof COUNTERS): EventType | null => {
  const c = COUNTERS[counter];
  return "event" in c ? c.event : null;
};

const FIGURES_SELECTION = FIGURE_NAMES.join(" ");
// Strings on purpose: built at run time from the analytics' one list (every figure it declares).
const VIDEO_FIGURES = `query ($id: ID!, $from: DateTime!, $to: DateTime!) { video(id: $id) {
  analytics(from: $from, to: $to, interval: HOUR) { ${FIGURES_SELECTION} timeline { ${FIGURES_SELECTION} } } } }`;
const TENANT_FIGURES = `query ($from: DateTime!, $to: DateTime!) { tenantAnalytics(from: $from, to: $to, interval: HOUR) {
  ${FIGURES_SELECTION} timeline { ${FIGURES_SELECTION} } } }`;

/**
 * The analytics' one list (src/analytics/counters.ts) against a real API and Postgres: beacons of every
 * event type go through the collection endpoint, and every figure it declares comes back through
 * GraphQL, each counter moving the figures that read it.
 */
describe("viewer analytics: every counter, from beacon to GraphQL", () => {
  let t: TestApp;
  let client = 0;

  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { TRUST_PROXY_HOPS: "1" } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function post(path: string, body: unknown) {
    const res = await fetch(`${t.url}${path}`, {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", "x-forwarded-for": `203.0.113.${++client}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  /** A video of its own, one view of it, and one batch of `events`; its figures as GraphQL reads them. */
  async function figuresAfter(title: string, events: BeaconEvent[]) {
    const { id } = await createUpload(t, title);
    const started = await post(ANALYTICS_PATHS.views, { v: 1, videoId: id });
    expect(started.status).toBe(201);
    const sent = await post(ANALYTICS_PATHS.beacons, {
      v: 1,
      videoId: id,
      viewToken: started.body.viewToken,
      seq: 0,
      events,
    });
    expect(sent).toEqual({ status: 202, body: { counted: true } });
    const { data, errors } = await t.gql(VIDEO_FIGURES, { id, ...range() });
    expect(errors).toBeUndefined();
    return data.video.analytics as Record<FigureName, number | null> & { timeline: Record<FigureName, number>[] };
  }

  const range = () => ({
    from: new Date(Date.now() - 3600_000).toISOString(),
    to: new Date(Date.now() + 3600_000).toISOString(),
  });

  it("reads back every figure of a view that sent every event type, for its video and its tenant", async () => {
    const all = await figuresAfter("every event", Object.values(SAMPLES));
    for (const name of FIGURE_NAMES) {
      expect.soft(all[name], name).toBeGreaterThan(0);
      expect.soft(all.timeline[0]?.[name], `timeline ${name}`).toBe(all[name]);
    }
    const { data, errors } = await t.gql(TENANT_FIGURES, range());
    expect(errors).toBeUndefined();
    for (const name of FIGURE_NAMES) expect.soft(data.tenantAnalytics[name], `tenant ${name}`).toBeGreaterThan(0);
  });

  it("moves, for each counter, a figure that reads it when its event is left out", async () => {
    const all = await figuresAfter("every event again", Object.values(SAMPLES));
    const fed = EVENT_TYPES.filter((type) => !(type in UNCOUNTED_EVENTS));
    for (const left of fed) {
      const without = await figuresAfter(
        `all but ${left}`,
        EVENT_TYPES.filter((type) => type !== left).map((type) => SAMPLES[type]),
      );
      for (const counter of Object.keys(COUNTERS) as (keyof typeof COUNTERS)[]) {
        if (eventOf(counter) !== left) continue;
        const readers = FIGURE_NAMES.filter((f) => (FIGURES[f].reads as readonly string[]).includes(counter));
        const moved = readers.filter((f) => without[f] !== all[f]);
        expect.soft(moved, `${counter} (fed by ${left}) moves one of ${readers.join(", ")}`).not.toEqual([]);
      }
    }
    // Every counter is fed by an event this test sends, or counted when a view starts (views, uniqueViewers).
    for (const counter of Object.keys(COUNTERS) as (keyof typeof COUNTERS)[]) {
      const event = eventOf(counter);
      if (event === null) expect(COUNTERS[counter].kind).toBe("viewStart");
      else expect(fed).toContain(event);
    }
  });
});
