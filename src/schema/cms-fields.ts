import { builder } from "../builder.ts";
import { CMS_LIMITS, cmsFieldsOf, type VideoMetadata } from "../videos/cms-fields.ts";

/** One key and its value of a video's metadata. */
interface MetadataEntryShape {
  key: string;
  value: string;
}

export const MetadataEntry = builder.objectRef<MetadataEntryShape>("MetadataEntry").implement({
  description: "One key of a video's metadata and its value.",
  fields: (t) => ({ key: t.exposeString("key"), value: t.exposeString("value") }),
});

/** Metadata as its GraphQL entries, by key. */
export function metadataEntries(metadata: VideoMetadata): MetadataEntryShape[] {
  return Object.keys(metadata)
    .sort()
    .map((key) => ({ key, value: metadata[key]! }));
}

export const MetadataEntryInput = builder.inputType("MetadataEntryInput", {
  description:
    `A key of a video's metadata and its value: the key 1 to ${CMS_LIMITS.metadataKeyLength} letters, digits or ` +
    `\`_ - . :\`, the value at most ${CMS_LIMITS.metadataValueLength} characters.`,
  fields: (t) => ({
    key: t.string({ required: true }),
    value: t.string({ required: true }),
  }),
});

export const METADATA_INPUT =
  `Key-value data of the CMS's own: at most ${CMS_LIMITS.metadataKeys} keys, each once, ` +
  `${CMS_LIMITS.metadataTotalBytes} bytes of keys and values in all (UTF-8).`;
export const TAGS_INPUT =
  `Labels: at most ${CMS_LIMITS.tags}, each 1 to ${CMS_LIMITS.tagLength} characters; ` +
  "stored trimmed and in lower case, each once.";
export const DESCRIPTION_INPUT = `At most ${CMS_LIMITS.descriptionLength} characters; line breaks allowed.`;
export const EXTERNAL_ID_INPUT =
  `The CMS's own id for the video, 1 to ${CMS_LIMITS.externalIdLength} characters, unique in the tenant: ` +
  "creating with an externalId the tenant already has returns that video as it is, creating nothing.";

// Read through cmsFieldsOf: an event's video snapshot leaves these out (src/events/video-events.ts).
builder.prismaObjectFields("Video", (t) => ({
  description: t.string({
    nullable: true,
    description: "The CMS's text about the video.",
    resolve: async (v, _args, ctx) => (await cmsFieldsOf(ctx.db, v))?.description ?? null,
  }),
  metadata: t.field({
    type: [MetadataEntry],
    description: "The CMS's key-value data, by key.",
    resolve: async (v, _args, ctx) => metadataEntries((await cmsFieldsOf(ctx.db, v))?.metadata ?? {}),
  }),
  tags: t.stringList({
    description: "Labels, trimmed and in lower case.",
    resolve: async (v, _args, ctx) => (await cmsFieldsOf(ctx.db, v))?.tags ?? [],
  }),
  externalId: t.string({
    nullable: true,
    description: "The CMS's own id for the video; unique in the tenant.",
    resolve: async (v, _args, ctx) => (await cmsFieldsOf(ctx.db, v))?.externalId ?? null,
  }),
}));
