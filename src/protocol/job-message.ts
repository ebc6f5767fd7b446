/** Every job message (API → worker), and the one parser of them. */
import { AudioTrackJobMessage } from "./audio-track-messages.ts";
import { ImportUrlJobMessage, RenderCompositionJobMessage, RenderManimJobMessage } from "./source-messages.ts";
import { LiveJobMessage } from "./live-messages.ts";
import { StaticRenditionsJobMessage } from "./static-rendition-messages.ts";
import { TranscribeJobMessage } from "./transcribe-messages.ts";
import { TranscodeChunkJobMessage, TranscodeJobMessage } from "./transcode-messages.ts";
import { ProtocolError } from "./version.ts";
import { z } from "zod";

/** Every job message kind, discriminated by `type`. */
export const JobMessage = z.discriminatedUnion("type", [
  TranscodeJobMessage,
  RenderManimJobMessage,
  RenderCompositionJobMessage,
  ImportUrlJobMessage,
  StaticRenditionsJobMessage,
  TranscodeChunkJobMessage,
  LiveJobMessage,
  AudioTrackJobMessage,
  TranscribeJobMessage,
]);
export type JobMessage = z.infer<typeof JobMessage>;

/** Parses an unknown message into a job message, with a readable error for old or foreign ones. */
export function parseJobMessage(data: unknown): JobMessage {
  const result = JobMessage.safeParse(data);
  if (!result.success) throw new ProtocolError("job message", data, result.error);
  return result.data;
}
