import type { CostSettings } from "../costs/cost-model.ts";
import type { Db } from "../db/client.ts";
import { NotFoundError, NoWorkerError, ValidationError } from "../errors.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import { announceQueuedJob } from "../jobs/create-job.ts";
import { transcribe } from "../jobs/kinds/transcribe.ts";
import { lockVideo } from "../jobs/video-lock.ts";
import { TRANSCRIBE_LANGUAGES } from "../protocol/transcribe-messages.ts";
import { findTenantVideoOrThrow } from "../videos/find-video.ts";
import { MAX_CAPTIONS_PER_VIDEO } from "./caption-tracks.ts";
import { queueGeneratedCaptions } from "./generated-caption-jobs.ts";
import { generatedCaptionRow, transcribeLanguageOf } from "./generated-caption-row.ts";
import { trackName } from "./track-attributes.ts";

/** The languages generated captions can be asked in, as the schema's descriptions quote them. */
export const GENERATED_CAPTION_LANGUAGES: readonly string[] = TRANSCRIBE_LANGUAGES;

/** The track name a generated track gets unless the caller names it. */
const DEFAULT_NAME = "English (generated)";

/** Generated tracks one create mutation may ask for. */
const MAX_GENERATED_AT_CREATION = 3;

/** What the create mutations' `generatedCaptions` input field says. */
export const GENERATED_CAPTIONS_INPUT =
  "Caption tracks to generate from the video's speech once it is READY (TRANSCRIBE jobs on a worker with `asr`), " +
  `one per BCP-47 tag, at most ${MAX_GENERATED_AT_CREATION}: English only (${TRANSCRIBE_LANGUAGES.join(", ")}, ` +
  'e.g. "en", "en-GB"). Listed in `Video.captions` as GENERATED and PROCESSING until made. Refused (a ' +
  "ValidationError) when no worker can transcribe now. Default: none.";

/**
 * The generated tracks a create mutation asked for (`languages`), checked: English tags, no two alike,
 * at most MAX_GENERATED_AT_CREATION, and a worker with `asr` alive when there are any.
 */
export async function validGeneratedCaptions(
  deps: Pick<GeneratedCaptionDeps, "dispatcher">,
  languages: readonly string[],
): Promise<{ language: string; name: string }[]> {
  const field = "generatedCaptions";
  const tags = [...new Set(languages.map((tag) => transcribeLanguageOf(tag, field).language))];
  if (tags.length === 0) return [];
  if (tags.length > MAX_GENERATED_AT_CREATION) {
    throw new ValidationError(field, `Ask for at most ${MAX_GENERATED_AT_CREATION} generated caption tracks`);
  }
  const unserved = await deps.dispatcher.whyUnserved(transcribe.capability);
  if (unserved) throw new ValidationError(field, `No worker can generate captions now: ${unserved}`);
  return tags.map((language, i) => ({ language, name: i === 0 ? DEFAULT_NAME : `${DEFAULT_NAME} ${language}` }));
}

/** What asking for generated captions needs. */
export interface GeneratedCaptionDeps {
  db: Db;
  dispatcher: { kick(): void; whyUnserved(capability: "asr"): Promise<string | null> };
  pubSub: VideoPubSub;
  maxAttempts: number;
  costs: CostSettings;
}

/**
 * Asks for a generated caption track of tenant `tenantId`'s video: a GENERATED caption, PROCESSING,
 * whose TRANSCRIBE job is queued now for a READY video and once it is READY for one still encoding.
 * Asking again by the same name answers the track there is (a FAILED one is made again). NoWorkerError
 * when no live worker has `asr`, so nothing waits forever.
 */
export async function requestGeneratedCaptions(
  deps: GeneratedCaptionDeps,
  tenantId: string,
  input: { videoId: string; language: string; name?: string | null },
): Promise<{ captionId: string; videoId: string }> {
  const video = await findTenantVideoOrThrow(deps.db, tenantId, input.videoId);
  const { language } = transcribeLanguageOf(input.language, "language");
  const name = trackName(input.name ?? DEFAULT_NAME, "name");
  const unserved = await deps.dispatcher.whyUnserved(transcribe.capability);
  if (unserved) throw new NoWorkerError("asr", `No worker can generate captions now: ${unserved}`);
  const { captionId, job } = await deps.db.$transaction(async (tx) => {
    const status = await lockVideo(tx, video.id);
    if (status === null) throw new NotFoundError("video", video.id);
    if (status === "FAILED" || status === "CANCELED") {
      throw new ValidationError("videoId", `The video is ${status}; it has no audio to transcribe`);
    }
    const existing = await tx.caption.findMany({
      where: { videoId: video.id },
      select: { id: true, name: true, source: true, status: true },
    });
    const same = existing.find((c) => c.name === name);
    if (same && same.source !== "GENERATED") {
      throw new ValidationError("name", `The video already has a caption track named "${name}"`);
    }
    if (same && same.status !== "FAILED") return { captionId: same.id, job: null };
    if (!same && existing.length >= MAX_CAPTIONS_PER_VIDEO) {
      throw new ValidationError("videoId", `A video has at most ${MAX_CAPTIONS_PER_VIDEO} caption tracks`);
    }
    // A generated track that FAILED is made again in place; otherwise a new one.
    const caption = same
      ? await tx.caption.update({
          where: { id: same.id },
          data: { ...generatedCaptionRow(language, name), error: null, jobId: null },
        })
      : await tx.caption.create({ data: { videoId: video.id, ...generatedCaptionRow(language, name) } });
    const jobs = await queueGeneratedCaptions(tx, video.id, deps);
    return { captionId: caption.id, job: jobs[0] ?? null };
  });
  if (job) announceQueuedJob(deps, await deps.db.video.findUniqueOrThrow({ where: { id: video.id } }));
  return { captionId, videoId: video.id };
}
