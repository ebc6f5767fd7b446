import { builder } from "../builder.ts";
import {
  CMS_LIMITS,
  cmsFieldsOf,
  validDescription,
  validMetadata,
  validTags,
  type VideoMetadata,
} from "../videos/cms-fields.ts";
import { validTitle } from "../videos/input-rules.ts";

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

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

/**
 * The title and the CMS's data as a change takes them (updateVideo, updateLiveStream): a field left
 * out stays as it is, null clears it (the title cannot be cleared).
 */
export function cmsChangeFields(t: PothosSchemaTypes.InputFieldBuilder<Types, "InputObject">) {
  return {
    title: t.string({ description: "1 to 300 characters." }),
    description: t.string({ description: DESCRIPTION_INPUT }),
    metadata: t.field({ type: [MetadataEntryInput], description: `Replaces the metadata whole. ${METADATA_INPUT}` }),
    tags: t.stringList({ description: `Replaces the tags. ${TAGS_INPUT}` }),
  };
}

/** The changes `cmsChangeFields` ask for, checked (lengths first, before anything reads the database). */
export function validCmsChanges(input: {
  title?: string | null;
  description?: string | null;
  metadata?: readonly { key: string; value: string }[] | null;
  tags?: readonly string[] | null;
}) {
  return {
    ...(input.title === undefined ? {} : { title: validTitle(input.title) }),
    ...(input.description === undefined ? {} : { description: validDescription(input.description) }),
    ...(input.metadata === undefined ? {} : { metadata: validMetadata(input.metadata) }),
    ...(input.tags === undefined ? {} : { tags: validTags(input.tags) }),
  };
}

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
