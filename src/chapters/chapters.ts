import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import type { Db } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { lockVideo } from "../jobs/video-lock.ts";
import { log } from "../log.ts";
import { chaptersKey } from "../protocol/storage-layout.ts";
import type { ApiStorage } from "../storage/types.ts";
import { findTenantVideoOrThrow } from "../videos/find-video.ts";
import { vttTime } from "../shared/webvtt.ts";

/**
 * A video's chapters (docs/api-guide.md, "Chapters"): set and replaced whole by `setChapters`,
 * kept on the video's row for GraphQL and as a WebVTT `chapters` file in storage for players.
 */

/** The most chapters a video has: a chapter list a viewer can scan, and a bounded file. */
export const MAX_CHAPTERS = 100;
/** The longest chapter title, in characters. */
export const MAX_CHAPTER_TITLE_CHARS = 100;

/** One chapter as stored on the video (`Video.chapters`): where it starts (seconds) and its title. */
export interface Chapter {
  startSeconds: number;
  title: string;
}

/**
 * `input` checked against the video's `duration`: at most MAX_CHAPTERS, each starting inside the
 * video and after the one before, with a one-line title of 1 to MAX_CHAPTER_TITLE_CHARS characters
 * (trimmed); starts rounded to the millisecond. Anything else is a ValidationError naming the
 * chapter (`chapters.3.title`).
 */
function checkedChapters(input: readonly Chapter[], duration: number): Chapter[] {
  if (input.length > MAX_CHAPTERS) {
    throw new ValidationError("chapters", `A video has at most ${MAX_CHAPTERS} chapters; ${input.length} were given`);
  }
  const chapters: Chapter[] = [];
  for (const [i, chapter] of input.entries()) {
    const startSeconds = Math.round(chapter.startSeconds * 1000) / 1000;
    if (!Number.isFinite(startSeconds) || startSeconds < 0 || startSeconds >= duration) {
      throw new ValidationError(
        `chapters.${i}.startSeconds`,
        `Chapter ${i + 1} starts at ${chapter.startSeconds} s, outside the video (0 to ${duration.toFixed(3)} s)`,
      );
    }
    const before = chapters.at(-1);
    if (before && startSeconds <= before.startSeconds) {
      throw new ValidationError(
        `chapters.${i}.startSeconds`,
        `Chapter ${i + 1} starts at ${startSeconds} s, not after chapter ${i} (${before.startSeconds} s): give them in order`,
      );
    }
    chapters.push({ startSeconds, title: chapterTitle(chapter.title, `chapters.${i}.title`) });
  }
  return chapters;
}

function chapterTitle(title: string, field: string): string {
  const trimmed = title.trim();
  const length = [...trimmed].length;
  if (length === 0 || length > MAX_CHAPTER_TITLE_CHARS) {
    throw new ValidationError(field, `A chapter's title has 1 to ${MAX_CHAPTER_TITLE_CHARS} characters`);
  }
  // One character class: linear, no backtracking.
  if (/\p{Cc}/u.test(trimmed) || !trimmed.isWellFormed()) {
    throw new ValidationError(field, "A chapter's title is one line of text, without control characters");
  }
  return trimmed;
}

/** Each chapter with where it ends: where the next starts, the last at the video's end. */
export function chapterSpans(chapters: readonly Chapter[], duration: number) {
  return chapters.map((c, i) => ({ ...c, endSeconds: chapters[i + 1]?.startSeconds ?? duration }));
}

/** Text as a WebVTT cue's payload shows it: `&`, `<` and `>` escaped (so no tag, and no `-->`). */
const cueText = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/** The chapters as a WebVTT file for a `<track kind="chapters">`: a cue per chapter, titled. */
function chaptersVtt(chapters: readonly Chapter[], duration: number): string {
  const cues = chapterSpans(chapters, duration).map(
    (c, i) => `${i + 1}\n${vttTime(c.startSeconds)} --> ${vttTime(c.endSeconds)}\n${cueText(c.title)}\n`,
  );
  return ["WEBVTT\n", ...cues].join("\n");
}

/** The stored chapters of a video row (its `chapters` column). */
export const chaptersOf = (video: { chapters: unknown }): Chapter[] =>
  Array.isArray(video.chapters) ? (video.chapters as Chapter[]) : [];

/**
 * Sets the chapters of the tenant's video `videoId`, replacing any it had (an empty list removes
 * them): checked against its duration (known once it is probed), written to storage as WebVTT
 * under a new key, then on its row; the file it replaces is deleted after. Returns the video's id.
 */
export async function setVideoChapters(
  deps: { db: Db; storage: Pick<ApiStorage, "write" | "deletePrefix"> },
  tenantId: string,
  videoId: string,
  input: readonly Chapter[],
): Promise<string> {
  const video = await findTenantVideoOrThrow(deps.db, tenantId, videoId);
  if (video.duration === null || video.duration <= 0) {
    throw new ValidationError(
      "videoId",
      "The video's length is not known yet: set its chapters once it is probed (it has a duration)",
    );
  }
  const chapters = checkedChapters(input, video.duration);
  let key: string | null = null;
  if (chapters.length > 0) {
    key = chaptersKey(video.id, randomUUID());
    const body = Buffer.from(chaptersVtt(chapters, video.duration), "utf8");
    // The file first: a row names only a file that is there to fetch.
    await deps.storage.write(key, Readable.from([body]), {
      limit: body.byteLength,
      contentType: "text/vtt; charset=utf-8",
    });
  }
  const replaced = await deps.db
    .$transaction(async (tx) => {
      // Under the video's lock: of two concurrent sets, the second replaces the first's file too.
      if ((await lockVideo(tx, video.id)) === null) throw new NotFoundError("video", video.id);
      const before = await tx.video.findUniqueOrThrow({ where: { id: video.id }, select: { chaptersKey: true } });
      await tx.video.update({
        where: { id: video.id },
        data: { chapters: chapters.map((c) => ({ ...c })), chaptersKey: key },
      });
      return before.chaptersKey;
    })
    .catch(async (err) => {
      // The row still names the file before: the one written for it goes.
      if (key) await deps.storage.deletePrefix(key).catch(() => {});
      throw err;
    });
  if (replaced && replaced !== key) {
    await deps.storage
      .deletePrefix(replaced)
      .catch((err) => log.warn("chapters: a replaced file could not be deleted", { key: replaced, err: String(err) }));
  }
  return video.id;
}
