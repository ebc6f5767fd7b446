import { builder } from "../builder.ts";
import type { Video } from "../generated/prisma/client.ts";
import { VideoRef } from "./video.ts";

export const RenderSuccess = builder.objectRef<{ video: Video }>("RenderSuccess").implement({
  description: "The video whose source is being rendered or imported; follow it with `videoEvents`.",
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});
