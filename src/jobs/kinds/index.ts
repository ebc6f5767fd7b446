import type { JobKind } from "../../generated/prisma/enums.ts";
import type { JobMessage } from "../../protocol/job-message.ts";
import { audioTrack } from "./audio-track.ts";
import { importUrl } from "./import-url.ts";
import type { JobKindModule } from "./job-kind-module.ts";
import { live } from "./live.ts";
import { renderComposition } from "./render-composition.ts";
import { renderManim } from "./render-manim.ts";
import { staticRenditions } from "./static-renditions.ts";
import { transcode } from "./transcode.ts";
import { transcodeChunk } from "./transcode-chunk.ts";
import { transcribe } from "./transcribe.ts";

/** Every job kind's module: a new kind does not compile until it has one. */
export const JOB_KINDS = {
  TRANSCODE: transcode,
  TRANSCODE_CHUNK: transcodeChunk,
  RENDER_MANIM: renderManim,
  RENDER_COMPOSITION: renderComposition,
  IMPORT_URL: importUrl,
  STATIC_RENDITIONS: staticRenditions,
  LIVE: live,
  AUDIO_TRACK: audioTrack,
  TRANSCRIBE: transcribe,
} satisfies Record<JobKind, JobKindModule>;

// A message type of the contract that no job kind sends fails to compile here.
type UnsentMessageType = Exclude<JobMessage["type"], (typeof JOB_KINDS)[JobKind]["messageType"]>;
const everyMessageTypeIsSent: [UnsentMessageType] extends [never] ? true : UnsentMessageType = true;
void everyMessageTypeIsSent;
