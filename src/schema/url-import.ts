import { builder } from "../builder.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { checkOutboundUrl, literalAddressProblem } from "../http/outbound-url.ts";
import { createRenderedVideo } from "../videos/create-rendered-video.ts";
import { RenderSuccess } from "./rendered-video.ts";
import { validIdempotencyKey, validTitle } from "../videos/input-rules.ts";
import { creationOptionFields, validCreationOptions } from "./creation-options.ts";
import { PlaybackPolicyEnum } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const CreateVideoFromUrlInput = builder.inputType("CreateVideoFromUrlInput", {
  fields: (t) => ({
    url: t.string({ required: true, description: "An http(s) URL of a video file on the public internet." }),
    title: t.string({ required: true }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum }),
    idempotencyKey: t.string({
      description: "The same key (per tenant) returns the same video instead of importing again.",
    }),
    ...creationOptionFields(t),
  }),
});

builder.mutationFields((t) => ({
  createVideoFromUrl: t.field({
    type: RenderSuccess,
    description:
      "Imports a video from a public http(s) URL (IMPORT_URL job: a worker downloads it into storage, at most " +
      "URL_IMPORT_MAX_BYTES, refusing private, loopback and link-local addresses after DNS resolution and on every " +
      "redirect), then transcodes it.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["IMPORT_URL", "TRANSCODE"] }),
    args: { input: t.arg({ type: CreateVideoFromUrlInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "CreateVideoFromUrlResult" } },
    resolve: async (_root, { input }, ctx) => {
      // The checks that need no network: a literal address is refused here, before a job costs
      // anything; the worker checks the addresses a host name resolves to.
      const url = checkOutboundUrl(input.url, { allowHttp: true, maxLength: 8192 });
      if (typeof url === "string") throw new ValidationError("url", `Cannot be imported: ${url}`);
      const literal = literalAddressProblem(url, ctx.urlImport.allowPrivateAddresses);
      if (literal !== null) throw new ValidationError("url", `Cannot be imported: ${literal}`);
      const video = await createRenderedVideo(ctx, {
        title: validTitle(input.title),
        idempotencyKey: validIdempotencyKey(input.idempotencyKey),
        playbackPolicy: input.playbackPolicy ?? "PUBLIC",
        options: await validCreationOptions(ctx, input),
        source: "URL",
        kind: "IMPORT_URL",
        input: { url: url.href },
      });
      return { video };
    },
  }),
}));
