import type { Db } from "../db/client.ts";
import type { SealedContentKey } from "../content-protection/content-keys.ts";
import type { ContentProtectionChoice } from "../content-protection/protection-choice.ts";
import { Prisma, type SegmentFormat, type StaticRenditionName, type Video } from "../generated/prisma/client.ts";
import { MediaFilters } from "../protocol/media-filters.ts";
import type { VideoMetadata } from "./cms-fields.ts";
import { generatedCaptionRow } from "../captions/generated-caption-row.ts";

/**
 * What the creator of a video chooses for it, as the video keeps it: every create mutation takes
 * these (src/schema/creation-options.ts) and `createVideo` writes them. Each key is the Video
 * field (column or relation) that holds it.
 */
export interface CreationOptions {
  segmentFormat: SegmentFormat;
  /** Its segments encrypted, with a key made for it (a clip gets its own key, never its source's). */
  contentProtection: (ContentProtectionChoice & { key: SealedContentKey }) | null;
  mediaFilters: MediaFilters;
  /** Made once the video is READY; asked for per video, so a clip does not inherit them. */
  staticRenditions: readonly StaticRenditionName[];
  /** Generated caption tracks (language and name), transcribed once the video is READY; a clip does not inherit them. */
  captions: readonly { language: string; name: string }[];
  /** A CMS's data (src/videos/cms-fields.ts): its own per video, so a clip does not inherit it. */
  description: string | null;
  metadata: VideoMetadata;
  tags: readonly string[];
  /** Unique per tenant: creating with one the tenant has returns that video (create-video-once.ts). */
  externalId: string | null;
}

/** The options a clip inherits from the video it is cut from, unless it chooses otherwise. */
export type InheritedOptions = Omit<
  CreationOptions,
  "staticRenditions" | "captions" | "description" | "metadata" | "tags" | "externalId" | "contentProtection"
> & { contentProtection: ContentProtectionChoice | null };

/** What a video made from a new source gets for an option its creator left out. */
export const NEW_VIDEO_DEFAULTS: InheritedOptions = { segmentFormat: "TS", mediaFilters: {}, contentProtection: null };

/** The media filters a video stores, or none when the row holds none (or something that is not them). */
export function storedMediaFilters(value: Prisma.JsonValue): MediaFilters {
  const parsed = MediaFilters.safeParse(value ?? {});
  return parsed.success ? parsed.data : {};
}

/** What a clip of `video` inherits. */
export function inheritedOptions(video: Pick<Video, keyof InheritedOptions | "keyRotationSegments">): InheritedOptions {
  const { contentProtection: method, keyRotationSegments } = video;
  return {
    segmentFormat: video.segmentFormat,
    mediaFilters: storedMediaFilters(video.mediaFilters),
    contentProtection: method === null ? null : { method, keyRotationSegments },
  };
}

/** A new video's fields that hold its creation options (a missing one fails to compile). */
function creationFields(
  options: CreationOptions,
): Required<Pick<Prisma.VideoUncheckedCreateInput, keyof CreationOptions>> &
  Pick<Prisma.VideoUncheckedCreateInput, "keyRotationSegments" | "contentKey"> {
  const filters = JSON.parse(JSON.stringify(MediaFilters.parse(options.mediaFilters))) as Prisma.InputJsonObject;
  return {
    segmentFormat: options.segmentFormat,
    contentProtection: options.contentProtection?.method ?? null,
    ...(options.contentProtection
      ? {
          keyRotationSegments: options.contentProtection.keyRotationSegments,
          contentKey: { create: options.contentProtection.key },
        }
      : {}),
    mediaFilters: Object.keys(filters).length > 0 ? filters : Prisma.DbNull,
    staticRenditions: { create: [...new Set(options.staticRenditions)].map((name) => ({ name })) },
    captions: { create: options.captions.map((c) => generatedCaptionRow(c.language, c.name)) },
    description: options.description,
    metadata: { ...options.metadata },
    tags: [...options.tags],
    externalId: options.externalId,
  };
}

/** Creates a video with its creation options; the one way a video row is created. */
export function createVideo(
  db: Pick<Db, "video">,
  data: Omit<Prisma.VideoUncheckedCreateInput, keyof CreationOptions>,
  options: CreationOptions,
): Promise<Video> {
  return db.video.create({ data: { ...data, ...creationFields(options) } });
}
