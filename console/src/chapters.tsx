import { formatDuration } from "./format.ts";
import { usePlaybackTime } from "./playback-time.ts";

/** A chapter as the API gives it (`Video.chapters`). */
export interface PlayerChapter {
  startSeconds: number;
  endSeconds: number;
  title: string;
}

/** The chapter playing at `seconds`, or null (before the first). */
export function chapterAt(chapters: readonly PlayerChapter[], seconds: number): PlayerChapter | null {
  let found: PlayerChapter | null = null;
  for (const c of chapters) if (c.startSeconds <= seconds) found = c;
  return found;
}

/** Chapters as the editor's lines: `1:30 Title`, one a line. */
export const chapterLines = (chapters: readonly { startSeconds: number; title: string }[]): string =>
  chapters.map((c) => `${formatTime(c.startSeconds)} ${c.title}`).join("\n");

/** A start as the editor writes it: m:ss or h:mm:ss, with milliseconds when it has them. */
function formatTime(seconds: number): string {
  const whole = Math.floor(seconds);
  const ms = Math.round((seconds - whole) * 1000);
  return formatDuration(whole) + (ms > 0 ? `.${String(ms).padStart(3, "0")}` : "");
}

/**
 * The editor's lines as chapters: each `TIME TITLE`, TIME as seconds, m:ss or h:mm:ss (a decimal
 * part allowed); blank lines skipped. The API checks the rest (order, the video's length, titles).
 */
export function parseChapterLines(
  text: string,
): { chapters: { startSeconds: number; title: string }[] } | { error: string } {
  const chapters: { startSeconds: number; title: string }[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "") continue;
    const space = line.indexOf(" ");
    const time = space < 0 ? line : line.slice(0, space);
    const startSeconds = parseTime(time);
    if (startSeconds === null || space < 0)
      return { error: `Line ${i + 1}: write a time, a space and a title (1:30 Title)` };
    chapters.push({ startSeconds, title: line.slice(space + 1).trim() });
  }
  return { chapters };
}

function parseTime(time: string): number | null {
  const parts = time.split(":");
  if (parts.length > 3 || parts.some((p) => p === "" || Number.isNaN(Number(p)))) return null;
  const seconds = parts.reduce((sum, p) => sum * 60 + Number(p), 0);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/**
 * The video's chapters under the player: each a button that seeks to its start, the one playing
 * marked (`aria-current`).
 */
export function ChapterList({
  video,
  chapters,
}: {
  video: { current: HTMLVideoElement | null };
  chapters: readonly PlayerChapter[];
}) {
  const [now, setNow] = usePlaybackTime(video);
  const playing = chapterAt(chapters, now);
  return (
    <nav class="chapters" aria-label="Chapters" data-testid="chapters">
      <ol>
        {chapters.map((c) => (
          <li key={c.startSeconds}>
            <button
              type="button"
              aria-current={c === playing ? "true" : undefined}
              onClick={() => {
                if (video.current) video.current.currentTime = c.startSeconds;
                setNow(c.startSeconds);
              }}
            >
              <span class="muted">{formatDuration(Math.floor(c.startSeconds))}</span> {c.title}
            </button>
          </li>
        ))}
      </ol>
    </nav>
  );
}
