/** A static renditions job: its message and how each rendition came out (`static_renditions.done`). */
import { z } from "zod";
import { readVersion, Traceparent } from "./version.ts";

/** A progressive file made beside the HLS ladder: `HIGHEST` and `LOW` as MP4, `AUDIO` as M4A. */
const StaticRenditionName = z.enum(["HIGHEST", "LOW", "AUDIO"]);

const RungName = z.string().regex(/^[a-z0-9]+$/);

/** One static rendition to make, from the published HLS rungs named (at least one of them). */
export const StaticRenditionPlan = z
  .object({ name: StaticRenditionName, videoRung: RungName.nullable(), audioRung: RungName.nullable() })
  .refine((r) => r.videoRung !== null || r.audioRung !== null, { message: "a rendition needs a rung" })
  .refine((r) => (r.name === "AUDIO") === (r.videoRung === null), { message: "AUDIO alone has no video rung" });
export type StaticRenditionPlan = z.infer<typeof StaticRenditionPlan>;

/**
 * Remuxes a READY video's published HLS rungs into progressive files under `{outputPrefix}/mp4/`
 * (stream copy, `+faststart`, no encode). Ends with `static_renditions.done`.
 */
export const StaticRenditionsJobMessage = z.object({
  v: readVersion,
  type: z.literal("static_renditions"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  outputPrefix: z.string().min(1),
  renditions: z.array(StaticRenditionPlan).min(1).max(StaticRenditionName.options.length),
});
export type StaticRenditionsJobMessage = z.infer<typeof StaticRenditionsJobMessage>;

/** How one static rendition came out: stored at `key`, or failed (alone: the others and the video stand). */
export const StaticRenditionOutcome = z.discriminatedUnion("status", [
  z.object({
    name: StaticRenditionName,
    status: z.literal("READY"),
    key: z.string().min(1),
    width: z.number().int().positive().nullable(),
    height: z.number().int().positive().nullable(),
    /** Average bits per second of the file. */
    bitrate: z.number().int().nonnegative(),
    sizeBytes: z.number().int().positive(),
  }),
  z.object({ name: StaticRenditionName, status: z.literal("FAILED"), error: z.string() }),
]);
export type StaticRenditionOutcome = z.infer<typeof StaticRenditionOutcome>;
