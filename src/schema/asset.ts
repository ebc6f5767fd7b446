import { randomUUID } from "node:crypto";
import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { FileTooLargeError, ValidationError } from "../errors.ts";
import { readImageHeader } from "../assets/image-header.ts";
import { WATERMARK_MAX_BYTES, WATERMARK_MAX_SIDE } from "../protocol/media-filters.ts";
import { tenantAssetKey } from "../protocol/storage-layout.ts";
import { UploadTooLargeError } from "../storage/types.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

/** What a composition can use an asset for. */
const AssetKindEnum = builder.enumType("AssetKind", {
  values: {
    BACKGROUND: { description: "A video looped behind the quiz." },
    TIMER: { description: "A timer bar video shown while a question runs." },
    CORRECT_SOUND: { description: "A sound played at the answer reveal." },
    WATERMARK: {
      description: `A PNG or JPEG image drawn over a video (up to ${WATERMARK_MAX_SIDE} pixels a side, 5 MiB).`,
    },
  } as const,
});

type AssetKind = "BACKGROUND" | "TIMER" | "CORRECT_SOUND" | "WATERMARK";

const ALLOWED_TYPES: Record<string, RegExp> = {
  BACKGROUND: /^video\//,
  TIMER: /^video\//,
  CORRECT_SOUND: /^audio\//,
  WATERMARK: /^image\//,
};

const AssetRef = builder.prismaObject("Asset", {
  description: "A file a tenant uploaded for its compositions.",
  fields: (t) => ({
    id: t.exposeID("id"),
    kind: t.field({ type: AssetKindEnum, resolve: (a) => a.kind as AssetKind }),
    name: t.exposeString("name"),
    size: t.exposeInt("size"),
    contentType: t.exposeString("contentType"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const UploadAssetSuccess = builder.objectRef<{ asset: { id: string } }>("UploadAssetSuccess").implement({
  fields: (t) => ({
    asset: t.prismaField({
      type: AssetRef,
      resolve: (query, r, _a, ctx) => ctx.db.asset.findUniqueOrThrow({ ...query, where: { id: r.asset.id } }),
    }),
  }),
});

builder.queryFields((t) => ({
  assets: t.prismaField({
    type: [AssetRef],
    description: "The caller's tenant's composition assets, newest first.",
    authScopes: { scope: "videos:read" },
    resolve: (query, _root, _args, ctx) =>
      ctx.db.asset.findMany({ ...query, where: { tenantId: tenantOf(ctx) }, orderBy: { createdAt: "desc" } }),
  }),
}));

builder.mutationFields((t) => ({
  uploadAsset: t.field({
    type: UploadAssetSuccess,
    description:
      "Uploads a background video, timer video or sound for compositions, or a watermark image " +
      "(GraphQL multipart request, up to MULTIPART_MAX_BYTES).",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [], points: 2 }),
    args: { file: t.arg({ type: "File", required: true }), kind: t.arg({ type: AssetKindEnum, required: true }) },
    errors: { types: [ValidationError, FileTooLargeError], union: { name: "UploadAssetResult" } },
    resolve: async (_root, { file, kind }, ctx) => {
      if (file.size === 0) throw new ValidationError("file", "The file is empty (0 bytes)");
      let type = file.type || "application/octet-stream";
      if (!ALLOWED_TYPES[kind]!.test(type)) {
        const expected = { CORRECT_SOUND: "an audio", WATERMARK: "an image" }[kind as string] ?? "a video";
        throw new ValidationError("file", `A ${kind} asset is ${expected} file; this one is ${type}`);
      }
      let body = file.stream() as unknown as AsyncIterable<Uint8Array>;
      if (kind === "WATERMARK") {
        const image = await watermarkImage(file);
        type = image.type;
        body = [image.bytes] as unknown as AsyncIterable<Uint8Array>;
      }
      const tenantId = tenantOf(ctx);
      const id = randomUUID();
      const name = (file.name || "asset").replace(/[^\w.-]+/g, "_").slice(0, 100) || "asset";
      const key = tenantAssetKey(tenantId, id, name);
      let size: number;
      try {
        size = await ctx.storage.write(key, body, {
          limit: ctx.maxUploadBytes,
          contentType: type,
        });
      } catch (err) {
        if (err instanceof UploadTooLargeError) throw new FileTooLargeError(ctx.maxUploadBytes);
        throw err;
      }
      const asset = await ctx.db.asset.create({ data: { id, tenantId, kind, name, key, size, contentType: type } });
      return { asset };
    },
  }),
}));

/** A watermark image's bytes and checked content type: a PNG or JPEG by its own bytes, of a bounded size. */
async function watermarkImage(file: File): Promise<{ bytes: Uint8Array; type: string }> {
  if (file.size > WATERMARK_MAX_BYTES) {
    throw new ValidationError("file", `A watermark image is at most ${WATERMARK_MAX_BYTES} bytes`);
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const header = readImageHeader(bytes);
  if (!header) {
    throw new ValidationError("file", "A watermark is one PNG or JPEG image, the whole file; this file is not");
  }
  if (header.width > WATERMARK_MAX_SIDE || header.height > WATERMARK_MAX_SIDE) {
    const size = `${header.width}x${header.height}`;
    throw new ValidationError("file", `A watermark image is at most ${WATERMARK_MAX_SIDE} pixels a side, not ${size}`);
  }
  return { bytes, type: `image/${header.format}` };
}
