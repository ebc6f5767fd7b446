import type { ContentKey, Video } from "../generated/prisma/client.ts";
import type { ContentProtection } from "../protocol/transcode-messages.ts";
import type { ContentKeys } from "./content-keys.ts";

/** A video as a job message is built from it: its row and its content key's. */
export type VideoWithKey = Video & { contentKey?: ContentKey | null };

/**
 * The encryption a transcode's (or a chunk's) message carries for `video`: none for a video
 * without protection; throws for a protected one whose key row is missing (its media must never
 * be published in the clear), which fails the job as undispatchable.
 */
export function messageProtection(
  video: VideoWithKey,
  contentKeys: ContentKeys,
): { contentProtection?: ContentProtection } {
  if (video.contentProtection === null) return {};
  if (!video.contentKey) throw new Error(`Video ${video.id} is protected but has no content key`);
  return {
    contentProtection: {
      method: video.contentProtection,
      key: contentKeys.open(video.contentKey).toString("hex"),
      keyRotationSegments: video.keyRotationSegments,
    },
  };
}
