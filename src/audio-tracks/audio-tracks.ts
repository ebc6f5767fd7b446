import { randomUUID } from "node:crypto";
import { canonicalLanguage, trackName } from "../captions/track-attributes.ts";
import { changeTrack, isPrismaError } from "../captions/track-changes.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import type { Db } from "../db/client.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import type { Video } from "../generated/prisma/client.ts";
import { checkOutboundUrl, literalAddressProblem } from "../http/outbound-url.ts";
import { isUuid } from "../ids.ts";
import { announceQueuedJob, createJob } from "../jobs/create-job.ts";
import { tellWorkersToCancel } from "../jobs/cancel.ts";
import { lockVideo } from "../jobs/video-lock.ts";
import type { AudioTrackSource } from "../protocol/audio-track-messages.ts";
import { audioTrackPrefix, audioTrackSourceKey } from "../protocol/storage-layout.ts";
import { type ApiStorage, UploadTooLargeError } from "../storage/types.ts";
import type { ApiTransport } from "../transport/types.ts";
import { findTenantVideoOrThrow } from "../videos/find-video.ts";

/** More tracks than this on one video is a mistake, not a use. */
export const MAX_AUDIO_TRACKS_PER_VIDEO = 8;

/** What adding, changing and removing a video's audio tracks needs. */
export interface AudioTrackDeps {
  db: Db;
  storage: Pick<ApiStorage, "write" | "deletePrefix">;
  costs: CostSettings;
  dispatcher: { kick(): void };
  pubSub: VideoPubSub;
  maxAttempts: number;
  maxUploadBytes: number;
  urlImport: { allowPrivateAddresses: boolean };
}

/** A new track as the tenant sent it (`addAudioTrack`'s input): checked here, in the order the errors name. */
export interface NewAudioTrack {
  videoId: string;
  language: string;
  name: string;
  file?: File | null;
  url?: string | null;
  default?: boolean | null;
}

/** A track's changes (`updateAudioTrack`'s input): a field left out (or null) stays as it is. */
export interface AudioTrackChanges {
  language?: string | null;
  name?: string | null;
  default?: boolean | null;
}

/** The track and its video, which the mutations' answers read as the query asks. */
export interface AudioTrackRef {
  audioTrackId: string;
  videoId: string;
}

const nameTaken = (name: string) => new ValidationError("name", `The video already has an audio track named "${name}"`);

const tooManyTracks = () =>
  new ValidationError("videoId", `A video has at most ${MAX_AUDIO_TRACKS_PER_VIDEO} audio tracks`);

/** A READY video with pictures and sound: the track is cut to its length and joins its variants' audio group. */
function checkVideoTakesTracks(video: {
  status: string;
  width: number | null;
  hasAudio: boolean | null;
  contentProtection: string | null;
}): void {
  // Its track's segments would be published unencrypted beside the protected ladder.
  if (video.contentProtection !== null) {
    throw new ValidationError("videoId", "A protected video cannot take alternate audio tracks yet");
  }
  if (video.status !== "READY") {
    throw new ValidationError("videoId", `Audio tracks are added to READY videos; this one is ${video.status}`);
  }
  if (video.width === null) {
    throw new ValidationError("videoId", "An audio-only video has no variants an alternate audio track could join");
  }
  // Its variants name no audio group and no audio codec: players would not take a track added to them.
  if (video.hasAudio === false) {
    throw new ValidationError("videoId", "A video without sound cannot take alternate audio tracks yet");
  }
}

/** The URL or the file, exactly one of them; the URL checked as createVideoFromUrl checks it. */
function checkedSource(
  track: NewAudioTrack,
  deps: Pick<AudioTrackDeps, "maxUploadBytes" | "urlImport">,
): { url: string } | { file: File } {
  if ((track.url == null) === (track.file == null)) {
    throw new ValidationError("file", "Give the audio as `file` or as `url`");
  }
  if (track.file != null) {
    if (track.file.size === 0) throw new ValidationError("file", "The file is empty (0 bytes)");
    if (track.file.size > deps.maxUploadBytes) throw new FileTooLargeError(deps.maxUploadBytes);
    return { file: track.file };
  }
  const url = checkOutboundUrl(track.url!, { allowHttp: true, maxLength: 8192 });
  if (typeof url === "string") throw new ValidationError("url", `Cannot be imported: ${url}`);
  const literal = literalAddressProblem(url, deps.urlImport.allowPrivateAddresses);
  if (literal !== null) throw new ValidationError("url", `Cannot be imported: ${literal}`);
  return { url: url.href };
}

/**
 * Adds an audio track to tenant `tenantId`'s READY video: an uploaded file is stored among the
 * video's sources first, then the track's row and its AUDIO_TRACK job under the video's lock (at most
 * MAX_AUDIO_TRACKS_PER_VIDEO, one default); a row that cannot be written takes its file with it.
 */
export async function addAudioTrack(
  deps: AudioTrackDeps,
  tenantId: string,
  track: NewAudioTrack,
): Promise<AudioTrackRef> {
  const video = await findTenantVideoOrThrow(deps.db, tenantId, track.videoId);
  const language = canonicalLanguage(track.language, "language");
  const name = trackName(track.name, "name");
  checkVideoTakesTracks(video);
  const given = checkedSource(track, deps);
  // Checked here to spare storage a file that cannot be kept; the check that holds is the one in the transaction.
  const existing = await deps.db.audioTrack.findMany({ where: { videoId: video.id }, select: { name: true } });
  if (existing.length >= MAX_AUDIO_TRACKS_PER_VIDEO) throw tooManyTracks();
  if (existing.some((t) => t.name === name)) throw nameTaken(name);

  const id = randomUUID();
  const source = await trackSource(deps, video.id, id, given);
  let locked: Video;
  try {
    locked = await deps.db.$transaction(async (tx) => {
      // The video's row lock makes count-then-insert one step, and orders the default flag with updates.
      const status = await lockVideo(tx, video.id);
      if (status === null) throw new NotFoundError("video", video.id);
      checkVideoTakesTracks({ ...video, status });
      if ((await tx.audioTrack.count({ where: { videoId: video.id } })) >= MAX_AUDIO_TRACKS_PER_VIDEO) {
        throw tooManyTracks();
      }
      if (track.default) await tx.audioTrack.updateMany({ where: { videoId: video.id }, data: { isDefault: false } });
      const job = await createJob(
        tx,
        { videoId: video.id, kind: "AUDIO_TRACK", input: { trackId: id, source }, maxAttempts: deps.maxAttempts },
        deps.costs,
      );
      await tx.audioTrack.create({
        data: {
          id,
          videoId: video.id,
          language,
          name,
          isDefault: track.default ?? false,
          jobId: job.id,
          sourceKey: source.kind === "stored" ? source.key : null,
          sourceUrl: source.kind === "url" ? source.url : null,
        },
      });
      return tx.video.findUniqueOrThrow({ where: { id: video.id } });
    });
  } catch (err) {
    if (source.kind === "stored") await deps.storage.deletePrefix(source.key);
    // Another request took the name meanwhile, or the video was deleted meanwhile.
    if (isPrismaError(err, "P2002")) throw nameTaken(name);
    if (isPrismaError(err, "P2003")) throw new NotFoundError("video", video.id);
    throw err;
  }
  announceQueuedJob(deps, locked);
  return { audioTrackId: id, videoId: video.id };
}

/** The job's source: an uploaded file stored among the video's sources (within maxUploadBytes), or the URL. */
async function trackSource(
  deps: Pick<AudioTrackDeps, "storage" | "maxUploadBytes">,
  videoId: string,
  trackId: string,
  given: { url: string } | { file: File },
): Promise<AudioTrackSource> {
  if ("url" in given) return { kind: "url", url: given.url };
  const key = audioTrackSourceKey(videoId, trackId);
  try {
    await deps.storage.write(key, given.file.stream() as unknown as AsyncIterable<Uint8Array>, {
      limit: deps.maxUploadBytes,
      contentType: given.file.type || "application/octet-stream",
    });
  } catch (err) {
    await deps.storage.deletePrefix(key);
    if (err instanceof UploadTooLargeError) throw new FileTooLargeError(deps.maxUploadBytes);
    throw err;
  }
  return { kind: "stored", key };
}

/** Tenant `tenantId`'s audio track `trackId`; another tenant's is "not found", exactly like a missing one. */
async function tenantTrackOrThrow(db: Db, tenantId: string, trackId: string) {
  const track = isUuid(trackId)
    ? await db.audioTrack.findFirst({
        where: { id: trackId, video: { tenantId } },
        select: { id: true, videoId: true, sourceKey: true, jobId: true },
      })
    : null;
  if (!track) throw new NotFoundError("audio track", trackId);
  return track;
}

/** Changes a track's name, language or default flag; its media stay as they are. */
export async function updateAudioTrack(
  db: Db,
  tenantId: string,
  trackId: string,
  changes: AudioTrackChanges,
): Promise<AudioTrackRef> {
  const track = await tenantTrackOrThrow(db, tenantId, trackId);
  const language = changes.language == null ? undefined : canonicalLanguage(changes.language, "language");
  const name = changes.name == null ? undefined : trackName(changes.name, "name");
  await changeTrack(db, track.videoId, {
    makesDefault: changes.default === true,
    clearOtherDefaults: (tx) =>
      tx.audioTrack.updateMany({
        where: { videoId: track.videoId, id: { not: track.id } },
        data: { isDefault: false },
      }),
    update: (tx) =>
      tx.audioTrack.updateMany({
        where: { id: track.id },
        data: { language, name, isDefault: changes.default ?? undefined },
      }),
    notFound: () => new NotFoundError("audio track", trackId),
    nameTaken: () => nameTaken(name ?? ""),
  });
  return { audioTrackId: track.id, videoId: track.videoId };
}

/**
 * Removes a track: its row first (the master stops listing it), its job canceled if it still waits
 * or runs (a worker running it is told to stop), then its media and its uploaded file.
 */
export async function removeAudioTrack(
  deps: Pick<AudioTrackDeps, "db" | "storage"> & { transport: ApiTransport },
  tenantId: string,
  trackId: string,
): Promise<AudioTrackRef> {
  const track = await tenantTrackOrThrow(deps.db, tenantId, trackId);
  const removed = await deps.db.$transaction(async (tx) => {
    await lockVideo(tx, track.videoId);
    const { count } = await tx.audioTrack.deleteMany({ where: { id: track.id } });
    if (count === 0 || !track.jobId) return { count, job: null };
    const canceled = await tx.job.updateMany({
      where: { id: track.jobId, status: { in: ["QUEUED", "RUNNING"] } },
      data: { status: "CANCELED", finishedAt: new Date(), error: "Its audio track was removed" },
    });
    const job = canceled.count ? await tx.job.findUnique({ where: { id: track.jobId } }) : null;
    return { count, job };
  });
  if (removed.count === 0) throw new NotFoundError("audio track", trackId);
  if (removed.job) await tellWorkersToCancel(deps.transport, removed.job.id, removed.job.attempt);
  await deps.storage.deletePrefix(audioTrackPrefix(track.videoId, track.id));
  if (track.sourceKey) await deps.storage.deletePrefix(track.sourceKey);
  return { audioTrackId: track.id, videoId: track.videoId };
}
