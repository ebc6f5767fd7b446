import { readFile } from "node:fs/promises";
import { createSchema, createYoga } from "graphql-yoga";
import { beforeAll, describe, expect, it } from "vitest";
import { workerRegistry } from "../render-worker/metrics.ts";
import { apiRegistry, graphqlMetricsPlugins } from "../src/metrics.ts";

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** Metric names of the project's own (not prom-client's default process metrics) in a registry. */
async function ownMetrics(): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const registry of [apiRegistry, workerRegistry]) {
    for (const m of await registry.getMetricsAsJSON()) {
      if (/^(videograph|graphql)_/.test(m.name)) names.set(m.name, String(m.type));
    }
  }
  return names;
}

/** The rows of docs/operations.md's metric tables: name → type. */
async function documentedMetrics(): Promise<Map<string, string>> {
  const text = await readFile("docs/operations.md", "utf8");
  const rows = [...text.matchAll(/^\| `((?:videograph|graphql)_\w+)` \| (\w+) \|/gm)];
  return new Map(rows.map((r) => [r[1]!, r[2]!]));
}

describe("metric names: registered, documented, and what the sample dashboard uses", () => {
  beforeAll(async () => {
    // yoga's plugin registers its metrics when a yoga instance is built with it.
    const yoga = createYoga({
      schema: createSchema({ typeDefs: "type Query { a: Int }" }),
      plugins: graphqlMetricsPlugins(),
    });
    await yoga.fetch("http://localhost/graphql?query=%7Ba%7D");
  });

  it("docs/operations.md lists every metric the programs register, with its type, and no other", async () => {
    const registered = await ownMetrics();
    const documented = await documentedMetrics();
    expect(registered.size).toBeGreaterThan(15);
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(registered));
  });

  it("deploy/grafana-dashboard.json is valid JSON whose every query uses registered metrics", async () => {
    const dashboard = JSON.parse(await readFile("deploy/grafana-dashboard.json", "utf8"));
    const registered = await ownMetrics();
    const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) =>
      p.targets.map((t) => t.expr),
    );
    expect(exprs.length).toBeGreaterThan(10);
    const used = new Set<string>();
    for (const expr of exprs) {
      const names = expr.match(/\b(?:videograph|graphql)_\w+/g) ?? [];
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) {
        const base = registered.has(name) ? name : name.replace(HISTOGRAM_SERIES, "");
        expect(registered.has(base), `${name} in ${expr}`).toBe(true);
        if (name !== base)
          expect(registered.get(base), `${name}: only histograms have ${name.slice(base.length)}`).toBe("histogram");
        used.add(base);
      }
    }
    // The dashboard shows the figures operators watch, from both programs.
    for (const name of [
      "videograph_jobs",
      "videograph_job_dispatch_latency_seconds",
      "videograph_webhook_deliveries_total",
      "videograph_upload_bytes_total",
      "videograph_graphql_subscriptions_active",
      "videograph_websocket_connections",
      "videograph_worker_jobs_in_flight",
      "videograph_worker_encode_realtime_factor",
      "videograph_worker_ffmpeg_cpu_seconds_total",
      "videograph_worker_memory_admissions_refused_total",
    ]) {
      expect(used).toContain(name);
    }
  });
});
