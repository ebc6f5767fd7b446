import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import type { Db } from "../db/client.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { lockVideo } from "../jobs/video-lock.ts";
import { captionKey, captionPrefix } from "../protocol/storage-layout.ts";
import type { ApiStorage } from "../storage/types.ts";
import { findTenantVideoOrThrow } from "../videos/find-video.ts";
import { type CaptionFormat, decodeCaptionBytes, MAX_CAPTION_BYTES, toPublishableWebVtt } from "./caption-text.ts";
import { timestampMapFor } from "./subtitle-playlists.ts";
import { canonicalLanguage, trackName } from "./track-attributes.ts";
import { changeTrack, isPrismaError } from "./track-changes.ts";

/** More tracks than this on one video is a mistake, not a use. */
export const MAX_CAPTIONS_PER_VIDEO = 30;

/** What adding, changing and removing a video's caption tracks needs: the rows and the files. */
export interface CaptionTrackDeps {
  db: Db;
  storage: Pick<ApiStorage, "write" | "deletePrefix">;
}

/** A new track as the tenant sent it (`addCaption`'s input): checked here, in the order the errors name. */
export interface NewCaptionTrack {
  videoId: string;
  language: string;
  name: string;
  text?: string | null;
  file?: File | null;
  /** Null: WEBVTT if the text starts with WEBVTT, else SRT. */
  format?: CaptionFormat | null;
  default?: boolean | null;
  autoselect?: boolean | null;
  forced?: boolean | null;
  hearingImpaired?: boolean | null;
}

/** A track's changes (`updateCaption`'s input): a field left out (or null) stays as it is. */
export interface CaptionTrackChanges {
  language?: string | null;
  name?: string | null;
  default?: boolean | null;
}

/** The track and its video, which the mutations' answers read as the query asks. */
export interface CaptionTrackRef {
  captionId: string;
  videoId: string;
}

/** The caption file's text from `text` or `file`, exactly one of them, within MAX_CAPTION_BYTES. */
async function captionText(text: string | null | undefined, file: File | null | undefined): Promise<string> {
  if ((text == null) === (file == null)) throw new ValidationError("text", "Give the captions as `text` or as `file`");
  if (text != null) {
    if (Buffer.byteLength(text, "utf8") > MAX_CAPTION_BYTES) throw new FileTooLargeError(MAX_CAPTION_BYTES);
    return text;
  }
  if (file!.size > MAX_CAPTION_BYTES) throw new FileTooLargeError(MAX_CAPTION_BYTES);
  return decodeCaptionBytes(new Uint8Array(await file!.arrayBuffer()));
}

/** Track names are unique per video (the database's unique index holds it under concurrent requests). */
const nameTaken = (name: string) =>
  new ValidationError("name", `The video already has a caption track named "${name}"`);

const tooManyTracks = () =>
  new ValidationError("videoId", `A video has at most ${MAX_CAPTIONS_PER_VIDEO} caption tracks`);

/**
 * Adds a WebVTT or SRT track to tenant `tenantId`'s video: the file is stored first, then its row
 * under the video's lock (at most MAX_CAPTIONS_PER_VIDEO, one default); a row that cannot be
 * written takes its file with it.
 */
export async function addCaptionTrack(
  deps: CaptionTrackDeps,
  tenantId: string,
  track: NewCaptionTrack,
): Promise<CaptionTrackRef> {
  const video = await findTenantVideoOrThrow(deps.db, tenantId, track.videoId);
  const language = canonicalLanguage(track.language, "language");
  const name = trackName(track.name, "name");
  const raw = await captionText(track.text, track.file);
  const captions = toPublishableWebVtt(raw, track.format ?? null, timestampMapFor(video.segmentFormat));
  // Checked here to spare storage a file that cannot be kept; the check that holds is the one in the transaction.
  const existing = await deps.db.caption.findMany({ where: { videoId: video.id }, select: { name: true } });
  if (existing.length >= MAX_CAPTIONS_PER_VIDEO) throw tooManyTracks();
  if (existing.some((c) => c.name === name)) throw nameTaken(name);

  const id = randomUUID();
  const key = captionKey(video.id, id);
  const body = Buffer.from(captions.vtt, "utf8");
  // The file first: a track the master lists is always there to fetch.
  await deps.storage.write(key, Readable.from([body]), {
    limit: body.byteLength,
    contentType: "text/vtt; charset=utf-8",
  });
  try {
    await deps.db.$transaction(async (tx) => {
      // The video's row lock makes count-then-insert one step: concurrent additions count one after the other.
      if ((await lockVideo(tx, video.id)) === null) throw new NotFoundError("video", video.id);
      if ((await tx.caption.count({ where: { videoId: video.id } })) >= MAX_CAPTIONS_PER_VIDEO) throw tooManyTracks();
      if (track.default) await tx.caption.updateMany({ where: { videoId: video.id }, data: { isDefault: false } });
      await tx.caption.create({
        data: {
          id,
          videoId: video.id,
          language,
          name,
          isDefault: track.default ?? false,
          autoselect: track.autoselect ?? true,
          forced: track.forced ?? false,
          hearingImpaired: track.hearingImpaired ?? false,
          source: "UPLOADED",
          key,
          cueCount: captions.cueCount,
          lastCueEnd: captions.lastCueEnd,
          size: body.byteLength,
        },
      });
    });
  } catch (err) {
    await deps.storage.deletePrefix(captionPrefix(video.id, id));
    // Another request took the name meanwhile, or the video was deleted meanwhile.
    if (isPrismaError(err, "P2002")) throw nameTaken(name);
    if (isPrismaError(err, "P2003")) throw new NotFoundError("video", video.id);
    throw err;
  }
  return { captionId: id, videoId: video.id };
}

/** Tenant `tenantId`'s caption `captionId`; another tenant's is "not found", exactly like a missing one. */
async function tenantCaptionOrThrow(db: Db, tenantId: string, captionId: string): Promise<CaptionTrackRef> {
  const caption = isUuid(captionId)
    ? await db.caption.findFirst({
        where: { id: captionId, video: { tenantId } },
        select: { id: true, videoId: true },
      })
    : null;
  if (!caption) throw new NotFoundError("caption", captionId);
  return { captionId: caption.id, videoId: caption.videoId };
}

/** Changes a track's name, language or default flag; its cues stay as they are. */
export async function updateCaptionTrack(
  db: Db,
  tenantId: string,
  captionId: string,
  changes: CaptionTrackChanges,
): Promise<CaptionTrackRef> {
  const caption = await tenantCaptionOrThrow(db, tenantId, captionId);
  const language = changes.language == null ? undefined : canonicalLanguage(changes.language, "language");
  const name = changes.name == null ? undefined : trackName(changes.name, "name");
  await changeTrack(db, caption.videoId, {
    makesDefault: changes.default === true,
    clearOtherDefaults: (tx) =>
      tx.caption.updateMany({
        where: { videoId: caption.videoId, id: { not: caption.captionId } },
        data: { isDefault: false },
      }),
    update: (tx) =>
      tx.caption.updateMany({
        where: { id: caption.captionId },
        data: { language, name, isDefault: changes.default ?? undefined },
      }),
    notFound: () => new NotFoundError("caption", captionId),
    nameTaken: () => nameTaken(name ?? ""),
  });
  return caption;
}

/** Removes a track: its row first (the master stops listing it), then its file. */
export async function removeCaptionTrack(
  deps: CaptionTrackDeps,
  tenantId: string,
  captionId: string,
): Promise<CaptionTrackRef> {
  const caption = await tenantCaptionOrThrow(deps.db, tenantId, captionId);
  // The row first: once the master no longer lists the track, its file can go.
  const removed = await deps.db.caption.deleteMany({ where: { id: caption.captionId } });
  if (removed.count === 0) throw new NotFoundError("caption", captionId);
  await deps.storage.deletePrefix(captionPrefix(caption.videoId, caption.captionId));
  return caption;
}
