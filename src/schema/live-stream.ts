import { builder } from "../builder.ts";
import { tenantOf, type Context } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { LiveStream } from "../generated/prisma/client.ts";
import { LiveLatencyMode, LiveStreamStatus } from "../generated/prisma/enums.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { MAX_RECONNECT_WINDOW_SECONDS } from "../live/broadcast-reconnects.ts";
import type { LiveHealth, LiveStreamEvent } from "../live/stream-events.ts";
import type { LiveRenditionHealth } from "../protocol/live-messages.ts";
import {
  createTenantLiveStream,
  findTenantStream,
  rotateTenantStreamKey,
  setTenantStreamEnabled,
  tenantStream,
  updateTenantLiveStream,
} from "../live/stream-management.ts";
import type { VideoMetadata } from "../videos/cms-fields.ts";
import {
  cmsChangeFields,
  DESCRIPTION_INPUT,
  METADATA_INPUT,
  MetadataEntry,
  MetadataEntryInput,
  metadataEntries,
  TAGS_INPUT,
  validCmsChanges,
} from "./cms-fields.ts";
import { PlaybackPolicyEnum, VideoRef } from "./video.ts";
import { notFoundGraphQLError } from "./errors.ts";

const LiveStreamStatusEnum = builder.enumType(LiveStreamStatus, {
  name: "LiveStreamStatus",
  description:
    "IDLE (never published), CONNECTED (a publisher was accepted, its encode starting), LIVE (playable), DISCONNECTED (the publisher left; the recording is being finished), ENDED (the broadcast is a VOD video).",
});
const LiveLatencyModeEnum = builder.enumType(LiveLatencyMode, {
  name: "LiveLatencyMode",
  description: "STANDARD: LIVE_SEGMENT_SECONDS segments; LOW: LIVE_LOW_LATENCY_SEGMENT_SECONDS segments.",
});

const LiveStreamRef = builder.prismaObject("LiveStream", {
  description: "An ingest point a publisher (OBS, ffmpeg) pushes to over RTMP or SRT; each broadcast becomes a video.",
  fields: (t) => ({
    id: t.exposeID("id"),
    title: t.exposeString("title"),
    status: t.expose("status", { type: LiveStreamStatusEnum }),
    latencyMode: t.expose("latencyMode", { type: LiveLatencyModeEnum }),
    recording: t.exposeBoolean("recording", { description: RECORDING }),
    reconnectWindowSeconds: t.int({
      description: RECONNECT_WINDOW,
      resolve: (s, _args, ctx) => s.reconnectWindowSeconds ?? ctx.live.defaultReconnectWindowSeconds,
    }),
    endOnUnpublish: t.exposeBoolean("endOnUnpublish", { description: END_ON_UNPUBLISH }),
    playbackPolicy: t.expose("playbackPolicy", { type: PlaybackPolicyEnum }),
    streamKeyHint: t.exposeString("keyHint", {
      description: "The stream key's last characters (the key is shown once).",
    }),
    disabled: t.boolean({ resolve: (s) => s.disabledAt !== null }),
    lastError: t.exposeString("lastError", {
      nullable: true,
      description: "Why the last broadcast ended or was refused, when the publisher did not end it itself.",
    }),
    ingestUrl: t.string({
      description:
        "The RTMP server publishers push to (OBS: Settings → Stream → Server); the stream key goes after it.",
      resolve: (_s, _args, ctx) => ctx.live.ingestUrl(),
    }),
    srtIngestUrl: t.string({
      nullable: true,
      description:
        "The SRT address publishers may push MPEG-TS (H.264, AAC) to instead, with the stream key as the stream id and encrypted with the stream's passphrase: `{srtIngestUrl}?streamid={streamKey}&passphrase={srtPassphrase}` (LiveStreamWithKey.srtUrl). Null where this API runs without SRT ingest.",
      resolve: (_s, _args, ctx) => ctx.live.srtIngestUrl(),
    }),
    activeVideo: t.field({
      type: VideoRef,
      nullable: true,
      description: "The broadcast in progress, or the last one (its recording).",
      resolve: (s, _args, ctx) =>
        s.activeVideoId ? ctx.db.video.findUnique({ where: { id: s.activeVideoId } }) : null,
    }),
    description: t.exposeString("description", {
      nullable: true,
      description: "The CMS's text each broadcast's video starts with.",
    }),
    metadata: t.field({
      type: [MetadataEntry],
      description: "The CMS's key-value data each broadcast's video starts with, by key.",
      resolve: (s) => metadataEntries(s.metadata as VideoMetadata),
    }),
    tags: t.exposeStringList("tags", { description: "The labels each broadcast's video starts with." }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

/** How long an SRT caller given `srtUrl` keeps sending what it holds after it closes (ffmpeg's `linger`). */
const SRT_LINGER_SECONDS = 3;

const LiveStreamWithKey = builder.objectRef<{ stream: LiveStream; streamKey: string }>("LiveStreamWithKey").implement({
  description:
    "A live stream and its stream key and SRT passphrase, shown only here: keep them secret (anyone with the key can broadcast over RTMP).",
  fields: (t) => ({
    liveStream: t.field({ type: LiveStreamRef, resolve: (r) => r.stream }),
    streamKey: t.exposeString("streamKey"),
    srtPassphrase: t.string({
      description:
        "What an SRT publisher encrypts with (SRT's `passphrase`, AES-128): a caller without it is refused. It changes with the key.",
      resolve: (r, _args, ctx) => ctx.live.srtPassphrase(r.streamKey),
    }),
    srtUrl: t.string({
      nullable: true,
      description:
        "The whole SRT address to publish to, key and passphrase in it, and `linger=3` (a caller that stops sends what it still holds first). OBS: Server, with Stream Key left empty. Null where this API runs without SRT ingest.",
      resolve: (r, _args, ctx) => {
        const base = ctx.live.srtIngestUrl();
        if (base === null) return null;
        const query = new URLSearchParams({
          streamid: r.streamKey,
          passphrase: ctx.live.srtPassphrase(r.streamKey),
          // SRT's live mode drops what a caller has not sent yet when it closes (an encoder's last
          // frames, flushed at the end): linger sends them first (docs/live.md, "SRT").
          linger: String(SRT_LINGER_SECONDS),
        });
        return `${base}?${query}`;
      },
    }),
  }),
});

const LiveRenditionHealthRef = builder.objectRef<LiveRenditionHealth>("LiveRenditionHealth").implement({
  description: "One rendition of a broadcast's ladder (a video rung or the audio), about once a second while live.",
  fields: (t) => ({
    name: t.exposeString("name", { description: "The rung's name, as in `Video.variants` (`720p`, `audio`)." }),
    segments: t.exposeInt("segments", { description: "Its segments published so far." }),
    bitrate: t.exposeInt("bitrate", {
      nullable: true,
      description:
        "Bits per second of its newest segments (up to three), as viewers fetch them; null before its first.",
    }),
    copied: t.exposeBoolean("copied", {
      description: "Whether it is the publisher's own video, copied without encoding (LIVE_PASSTHROUGH).",
    }),
  }),
});

const LiveHealthRef = builder.objectRef<LiveHealth>("LiveHealth").implement({
  description: "A broadcast's encode, about once a second while live.",
  fields: (t) => ({
    mediaSeconds: t.exposeFloat("mediaSeconds", { description: "Seconds of the broadcast encoded." }),
    fps: t.exposeFloat("fps", { nullable: true }),
    speed: t.exposeFloat("speed", {
      nullable: true,
      description: "Encoding speed over real time: below 1 the broadcast falls behind.",
    }),
    segments: t.exposeInt("segments", { description: "Segments of the top rendition published." }),
    behindSeconds: t.exposeFloat("behindSeconds", {
      nullable: true,
      description: "How far the newest published segment's end is behind the broadcast's wall-clock time.",
    }),
    inputBitrate: t.exposeInt("inputBitrate", { nullable: true, description: "Bits per second the publisher sends." }),
    inputKeyframeInterval: t.exposeFloat("inputKeyframeInterval", {
      nullable: true,
      description:
        "Seconds between the publisher's last two keyframes (OBS: Keyframe Interval; 1 to 2 s is what the docs ask for).",
    }),
    inputFps: t.exposeFloat("inputFps", {
      nullable: true,
      description: "Frames per second the publisher sends, over its last group of pictures.",
    }),
    renditions: t.field({
      type: [LiveRenditionHealthRef],
      description: "Each rendition: its segments, its bit rate, whether it is copied.",
      resolve: (h) => h.renditions,
    }),
  }),
});

const LiveStreamEventRef = builder.objectRef<LiveStreamEvent>("LiveStreamEvent").implement({
  description: "A live stream's state (first its current one), and its encode's health while live.",
  fields: (t) => ({
    liveStream: t.field({ type: LiveStreamRef, resolve: (e) => e.stream }),
    status: t.field({ type: LiveStreamStatusEnum, resolve: (e) => e.stream.status }),
    health: t.field({ type: LiveHealthRef, nullable: true, resolve: (e) => e.health }),
  }),
});

/** What `reconnectWindowSeconds` and `endOnUnpublish` mean, on the stream and in its inputs. */
const RECONNECT_WINDOW = `Seconds a broadcast whose publisher's connection dropped waits for it to come back and continue the same video (0 to ${MAX_RECONNECT_WINDOW_SECONDS}; default LIVE_RECONNECT_GRACE_SECONDS). A broadcast keeps the window it started with.`;
const END_ON_UNPUBLISH =
  "Whether the publisher ending its stream (the encoder's Stop: RTMP deleteStream, an SRT close) ends the broadcast at once, its recording READY seconds later. False: it waits the reconnect window, as a dropped connection does. Default true.";

/** What `recording` means, on the stream and in its inputs. */
const RECORDING =
  "Whether each broadcast's recording is kept as a VOD video (READY when it ends). Off, the broadcast plays live as usual and its video ends DISCARDED: its media are deleted when it ends. A broadcast keeps the setting it started with.";

const LiveUsageRef = builder.objectRef<Awaited<ReturnType<Context["live"]["usage"]>>>("LiveUsage").implement({
  description: "The tenant's live broadcast time in the current calendar month (UTC), and its quota.",
  fields: (t) => ({
    month: t.expose("month", { type: "DateTime", description: "The month's first instant (UTC)." }),
    secondsUsed: t.exposeFloat("secondsUsed", {
      description:
        "Its ended broadcasts' lengths (each counted in the month it ended) and its broadcasts on air, since each started.",
    }),
    minutesLimit: t.exposeFloat("minutesLimit", {
      nullable: true,
      description:
        "LIVE_MAX_MINUTES_PER_TENANT_MONTH: a broadcast starts only with time left and stops when it runs out. Null: no quota.",
    }),
  }),
});

/** The CMS's data each broadcast's video starts with, as createLiveStream and updateLiveStream take it. */
const BROADCAST_DATA = "Each broadcast's video starts with it (a change reaches the next broadcast).";

const CreateLiveStreamInput = builder.inputType("CreateLiveStreamInput", {
  fields: (t) => ({
    title: t.string({ description: "Each broadcast's video gets it; default `Live stream`." }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum, description: "Of its broadcasts' videos; default PUBLIC." }),
    latencyMode: t.field({ type: LiveLatencyModeEnum, description: "Default STANDARD." }),
    recording: t.boolean({ description: `${RECORDING} Default true.` }),
    reconnectWindowSeconds: t.int({ description: RECONNECT_WINDOW }),
    endOnUnpublish: t.boolean({ description: END_ON_UNPUBLISH }),
    description: t.string({ description: `${DESCRIPTION_INPUT} ${BROADCAST_DATA}` }),
    metadata: t.field({ type: [MetadataEntryInput], description: `${METADATA_INPUT} ${BROADCAST_DATA}` }),
    tags: t.stringList({ description: `${TAGS_INPUT} ${BROADCAST_DATA}` }),
  }),
});

const UpdateLiveStreamInput = builder.inputType("UpdateLiveStreamInput", {
  description: `What to change, as updateVideo takes it: a field left out stays as it is, null clears it (title cannot be cleared). ${BROADCAST_DATA}`,
  fields: (t) => ({
    ...cmsChangeFields(t),
    recording: t.boolean({ description: `${RECORDING} Null leaves it as it is.` }),
    reconnectWindowSeconds: t.int({ description: `${RECONNECT_WINDOW} Null: the default.` }),
    endOnUnpublish: t.boolean({ description: `${END_ON_UNPUBLISH} Null leaves it as it is.` }),
  }),
});

builder.queryFields((t) => ({
  liveStream: t.prismaField({
    type: "LiveStream",
    nullable: true,
    authScopes: { scope: "videos:read" },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, { id }, ctx) => findTenantStream(ctx.db, tenantOf(ctx), String(id), query),
  }),
  liveUsage: t.field({
    type: LiveUsageRef,
    description: "The tenant's live broadcast time this month, and its monthly quota.",
    authScopes: { scope: "videos:read" },
    resolve: (_root, _args, ctx) => ctx.live.usage(tenantOf(ctx)),
  }),
  liveStreams: t.prismaField({
    type: ["LiveStream"],
    description: "The tenant's live streams, newest first (at most 100).",
    authScopes: { scope: "videos:read" },
    resolve: (query, _root, _args, ctx) =>
      ctx.db.liveStream.findMany({
        ...query,
        where: { tenantId: tenantOf(ctx) },
        orderBy: { createdAt: "desc" },
        take: 100,
      }),
  }),
}));

builder.mutationFields((t) => ({
  createLiveStream: t.field({
    type: LiveStreamWithKey,
    description:
      "A new live stream and its stream key (shown once). Publish to `ingestUrl` with the key as the stream key.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: CreateLiveStreamInput }) },
    errors: { types: [ValidationError], union: { name: "CreateLiveStreamResult" } },
    resolve: (_root, { input }, ctx) => createTenantLiveStream(ctx.db, tenantOf(ctx), input ?? {}),
  }),
  updateLiveStream: t.field({
    type: LiveStreamRef,
    description:
      "Changes a live stream's title, whether its recordings are kept, how its broadcasts end, and the CMS's data its broadcasts' videos start with; a broadcast on air keeps what it started with.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateLiveStreamInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "UpdateLiveStreamResult" } },
    resolve: (_root, { id, input }, ctx) =>
      updateTenantLiveStream(ctx.db, tenantOf(ctx), String(id), {
        cms: validCmsChanges(input),
        recording: input.recording,
        endOnUnpublish: input.endOnUnpublish,
        reconnectWindowSeconds: input.reconnectWindowSeconds,
      }),
  }),
  rotateLiveStreamKey: t.field({
    type: LiveStreamWithKey,
    description: "A new stream key; the old one is refused from now on (a broadcast on air goes on).",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "RotateLiveStreamKeyResult" } },
    resolve: (_root, { id }, ctx) => rotateTenantStreamKey(ctx.db, tenantOf(ctx), String(id)),
  }),
  endLiveStream: t.field({
    type: LiveStreamRef,
    description:
      "Ends the stream's broadcast now, on air or waiting for its publisher: the publisher is cut off, and the stream is ENDED (its recording READY) seconds later, as when the publisher stops. The next publish starts a new broadcast.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "EndLiveStreamResult" } },
    resolve: async (_root, { id }, ctx) => {
      const stream = await tenantStream(ctx.db, tenantOf(ctx), String(id));
      if (!(await ctx.live.endBroadcast(stream)))
        throw new ValidationError("id", "The live stream has no broadcast to end");
      return stream;
    },
  }),
  setLiveStreamEnabled: t.field({
    type: LiveStreamRef,
    description: "Disables (its publisher is refused) or enables a live stream; its key is kept.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }), enabled: t.arg.boolean({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "SetLiveStreamEnabledResult" } },
    resolve: (_root, { id, enabled }, ctx) => setTenantStreamEnabled(ctx.db, tenantOf(ctx), String(id), enabled),
  }),
}));

builder.subscriptionFields((t) => ({
  liveStreamEvents: t.field({
    type: LiveStreamEventRef,
    description:
      "A live stream's state now, then each change (IDLE → CONNECTED → LIVE → DISCONNECTED → ENDED) and its encode's health while live.",
    authScopes: { scope: "videos:read" },
    args: { id: t.arg.id({ required: true }) },
    subscribe: async (_root, { id }, ctx: Context) => {
      const stream = await findTenantStream(ctx.db, tenantOf(ctx), String(id));
      if (!stream) throw notFoundGraphQLError("live stream", String(id));
      return ctx.live.follow(stream.id);
    },
    resolve: (event: LiveStreamEvent) => event,
  }),
}));
