import { GraphQLError } from "graphql";
import { FIGURES, type FigureName } from "../analytics/counters.ts";
import type { AnalyticsFigures, AnalyticsInterval, AnalyticsPoint, AnalyticsReport } from "../analytics/figures.ts";
import { builder } from "../builder.ts";
import { type Context, tenantOf } from "../context.ts";
import { isUuid } from "../ids.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { notFoundGraphQLError } from "./errors.ts";

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

const AnalyticsIntervalEnum = builder.enumType("AnalyticsInterval", {
  description: "The width of each point of an analytics timeline (UTC).",
  values: { HOUR: { value: "HOUR" }, DAY: { value: "DAY" } } as const,
});

/** The figures an analytics period and each point of its timeline share, one field each of `FIGURES`. */
function figureFields<T extends AnalyticsFigures>(t: PothosSchemaTypes.ObjectFieldBuilder<Types, T>) {
  return Object.fromEntries(
    (Object.keys(FIGURES) as FigureName[]).map((name) => {
      const figure: { type: "int" | "float"; nullable?: true; description: string } = FIGURES[name];
      const options = { description: figure.description, resolve: (f: T) => f[name] };
      const nonNull = { ...options, resolve: (f: T) => f[name] as number };
      const field =
        figure.type === "int"
          ? figure.nullable
            ? t.int({ ...options, nullable: true })
            : t.int(nonNull)
          : figure.nullable
            ? t.float({ ...options, nullable: true })
            : t.float(nonNull);
      return [name, field];
    }),
  );
}

const AnalyticsPointRef = builder.objectRef<AnalyticsPoint>("AnalyticsPoint").implement({
  description: "One hour or day of a timeline.",
  fields: (t) => ({
    at: t.field({ type: "DateTime", description: "The start of the hour or day (UTC).", resolve: (p) => p.at }),
    ...figureFields(t),
  }),
});

const RenditionWatchTimeRef = builder
  .objectRef<AnalyticsReport["topRenditions"][number]>("RenditionWatchTime")
  .implement({
    fields: (t) => ({
      height: t.exposeInt("height"),
      watchTimeSeconds: t.exposeFloat("watchTimeSeconds"),
      share: t.exposeFloat("share", { description: "Of the time played at any height, 0..1." }),
    }),
  });

const ViewerAnalyticsRef = builder.objectRef<AnalyticsReport>("ViewerAnalytics").implement({
  description:
    "What viewers experienced over [from, to), from hourly rollups its players' beacons fed (docs/analytics.md).",
  fields: (t) => ({
    from: t.field({ type: "DateTime", resolve: (r) => r.from }),
    to: t.field({ type: "DateTime", resolve: (r) => r.to }),
    interval: t.field({ type: AnalyticsIntervalEnum, resolve: (r) => r.interval }),
    ...figureFields(t),
    topRenditions: t.field({
      type: [RenditionWatchTimeRef],
      description: "Heights by time played there, most first (at most 10).",
      resolve: (r) => r.topRenditions,
    }),
    timeline: t.field({
      type: [AnalyticsPointRef],
      description: "The hours or days that had views, oldest first.",
      resolve: (r) => r.timeline,
    }),
  }),
});

const AnalyticsCollectionRef = builder.objectRef<{ enabled: boolean }>("AnalyticsCollection").implement({
  description: "Whether the tenant's players may send analytics beacons.",
  fields: (t) => ({ enabled: t.exposeBoolean("enabled") }),
});

/** Points a timeline may hold. */
const MAX_POINTS: Record<AnalyticsInterval, number> = { HOUR: 24 * 31, DAY: 366 };
const UNIT_MS: Record<AnalyticsInterval, number> = { HOUR: 3_600_000, DAY: 86_400_000 };

function checkedRange(from: Date, to: Date, interval: AnalyticsInterval) {
  const points = (to.getTime() - from.getTime()) / UNIT_MS[interval];
  if (!(points > 0) || points > MAX_POINTS[interval]) {
    throw new GraphQLError(
      `\`to\` must be after \`from\`, by at most ${MAX_POINTS[interval]} ${interval === "HOUR" ? "hours" : "days"}`,
      { extensions: { code: "BAD_USER_INPUT" } },
    );
  }
  return { from, to, interval };
}

builder.prismaObjectFields("Video", (t) => ({
  analytics: t.field({
    type: ViewerAnalyticsRef,
    description: "Viewer analytics of this video over [from, to): at most 366 days by DAY, 31 days by HOUR.",
    authScopes: { scope: "videos:read" },
    args: {
      from: t.arg({ type: "DateTime", required: true }),
      to: t.arg({ type: "DateTime", required: true }),
      interval: t.arg({ type: AnalyticsIntervalEnum, defaultValue: "DAY", required: true }),
    },
    resolve: (video, { from, to, interval }, ctx) =>
      ctx.analytics.report({ videoId: video.id }, checkedRange(from, to, interval)),
  }),
}));

builder.queryFields((t) => ({
  tenantAnalytics: t.field({
    type: ViewerAnalyticsRef,
    description: "Viewer analytics of all the caller's tenant's videos over [from, to), summed.",
    authScopes: { scope: "videos:read" },
    args: {
      from: t.arg({ type: "DateTime", required: true }),
      to: t.arg({ type: "DateTime", required: true }),
      interval: t.arg({ type: AnalyticsIntervalEnum, defaultValue: "DAY", required: true }),
    },
    resolve: (_root, { from, to, interval }, ctx) =>
      ctx.analytics.report({ tenantId: tenantOf(ctx) }, checkedRange(from, to, interval)),
  }),
  analyticsCollection: t.field({
    type: AnalyticsCollectionRef,
    description: "Whether the caller's tenant collects viewer analytics.",
    authScopes: { scope: "videos:read" },
    resolve: async (_root, _args, ctx) =>
      ctx.db.tenant
        .findUniqueOrThrow({ where: { id: tenantOf(ctx) }, select: { analyticsEnabled: true } })
        .then((r) => ({
          enabled: r.analyticsEnabled,
        })),
  }),
}));

builder.mutationFields((t) => ({
  setAnalyticsCollection: t.field({
    type: AnalyticsCollectionRef,
    description:
      "Turns the caller's tenant's viewer analytics on or off. Off: the collection endpoint refuses its players' " +
      "views and beacons (stored figures stay).",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { enabled: t.arg.boolean({ required: true }) },
    resolve: async (_root, { enabled }, ctx) => {
      await ctx.analytics.setCollection(tenantOf(ctx), enabled);
      return { enabled };
    },
  }),
}));

builder.subscriptionFields((t) => ({
  viewersNow: t.int({
    description:
      "How many views of the video sent a beacon lately (ANALYTICS_VIEWERS_NOW_SECONDS): now, then each time it changes.",
    authScopes: { scope: "videos:read" },
    args: { videoId: t.arg.id({ required: true }) },
    subscribe: async (_root, { videoId }, ctx: Context) => {
      const id = String(videoId);
      const video = isUuid(id) ? await ctx.db.video.findFirst({ where: { id, tenantId: tenantOf(ctx) } }) : null;
      if (!video) throw notFoundGraphQLError("video", id);
      return ctx.analytics.followViewersNow(id);
    },
    resolve: (count: number) => count,
  }),
}));
