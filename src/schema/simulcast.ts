import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { SimulcastTargetState } from "../generated/prisma/enums.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { maskedStreamKey } from "../simulcast/target-keys.ts";
import { addTenantTarget, findTenantTarget, removeTarget } from "../simulcast/targets.ts";

const SimulcastTargetStateEnum = builder.enumType(SimulcastTargetState, {
  name: "SimulcastTargetState",
  description:
    "IDLE (no broadcast yet), CONNECTING, LIVE (the broadcast is forwarded to it), RETRYING (its connection failed " +
    "or stalled: `lastError`, and it tries again with back-off while the broadcast lasts), " +
    "STOPPED (the broadcast ended).",
});

const SimulcastTargetRef = builder.prismaObject("SimulcastTarget", {
  description:
    "A place a live stream's broadcasts are forwarded to as the publisher sends them (copied, not encoded again): " +
    "YouTube, Twitch, another videograph. Each target is forwarded on its own: one failing or slow never stops the " +
    "broadcast or the others.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    url: t.exposeString("url", {
      description: "The server's rtmp://, rtmps:// or srt:// URL, without the stream key.",
    }),
    streamKey: t.string({
      description:
        "The stream key, masked: its last four characters (none for a key of 8 or fewer). " +
        "The key itself is never returned.",
      resolve: (target) => maskedStreamKey(target.keyHint),
    }),
    state: t.expose("state", { type: SimulcastTargetStateEnum }),
    lastError: t.exposeString("lastError", {
      nullable: true,
      description: "Why its last connection failed (cleared once it is LIVE again).",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

builder.prismaObjectField("LiveStream", "simulcastTargets", (t) =>
  t.relation("simulcastTargets", {
    description: "Where its broadcasts are forwarded to, oldest first, with each one's state and last error.",
    query: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
  }),
);

const AddSimulcastTargetInput = builder.inputType("AddSimulcastTargetInput", {
  fields: (t) => ({
    liveStreamId: t.id({ required: true }),
    name: t.string({ required: true, description: "What the console shows, 1 to 100 characters." }),
    url: t.string({
      required: true,
      description:
        "The server: rtmp://host/app, rtmps://host/app or srt://host:port (no query), at most 512 characters, " +
        "on a public address (`rtmp://a.rtmp.youtube.com/live2`, `rtmp://live.twitch.tv/app`).",
    }),
    streamKey: t.string({
      required: true,
      description:
        "The target's stream key (the RTMP stream name, or SRT's streamid), 1 to 256 printable characters. " +
        "Stored encrypted; only its last four characters are ever returned.",
    }),
  }),
});

const RemoveSimulcastTargetSuccess = builder
  .objectRef<{ removedId: string; liveStreamId: string }>("RemoveSimulcastTargetSuccess")
  .implement({
    fields: (t) => ({
      removedSimulcastTargetId: t.exposeID("removedId"),
      liveStream: t.prismaField({
        type: "LiveStream",
        resolve: (query, r, _a, ctx) =>
          ctx.db.liveStream.findUniqueOrThrow({ ...query, where: { id: r.liveStreamId } }),
      }),
    }),
  });

builder.mutationFields((t) => ({
  addSimulcastTarget: t.prismaField({
    type: SimulcastTargetRef,
    description:
      "Adds a place the stream's broadcasts are forwarded to (at most LIVE_SIMULCAST_MAX_TARGETS a stream). A " +
      "broadcast on air starts forwarding to it within seconds.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: AddSimulcastTargetInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "AddSimulcastTargetResult" } },
    resolve: (_query, _root, { input }, ctx) =>
      addTenantTarget(ctx.db, ctx.live.simulcast, tenantOf(ctx), String(input.liveStreamId), input),
  }),
  removeSimulcastTarget: t.field({
    type: RemoveSimulcastTargetSuccess,
    description: "Removes a target; a broadcast on air stops forwarding to it within seconds.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "RemoveSimulcastTargetResult" } },
    resolve: async (_root, { id }, ctx) => {
      const target = await findTenantTarget(ctx.db, tenantOf(ctx), String(id));
      if (!target) throw new NotFoundError("simulcast target", String(id));
      await removeTarget(ctx.db, target);
      return { removedId: target.id, liveStreamId: target.liveStreamId };
    },
  }),
}));
