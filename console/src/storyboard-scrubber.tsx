import { useEffect, useRef, useState } from "preact/hooks";
import { chapterAt, type PlayerChapter } from "./chapters.tsx";
import { formatDuration } from "./format.ts";
import { usePlaybackTime } from "./playback-time.ts";
import { MAX_STORYBOARD_VTT_CHARS, parseStoryboardVtt, type StoryboardTile, tileAt } from "./storyboard-vtt.ts";

export interface StoryboardProps {
  /** The storyboard's WebVTT (Video.storyboard.vttUrl). */
  vttUrl: string;
  /** A tile every this many seconds: the arrow keys' step. */
  intervalSeconds: number;
  /** The video's duration in seconds. */
  duration: number;
}

/** The storyboard's tiles, read once per URL; empty while loading or when it cannot be read. */
function useTiles(vttUrl: string): StoryboardTile[] {
  const [tiles, setTiles] = useState<StoryboardTile[]>([]);
  useEffect(() => {
    let current = true;
    const controller = new AbortController();
    void (async () => {
      try {
        const res = await fetch(vttUrl, { signal: controller.signal });
        const size = Number(res.headers.get("content-length") ?? 0);
        if (!res.ok || size > MAX_STORYBOARD_VTT_CHARS) return;
        const text = await res.text();
        if (current) setTiles(parseStoryboardVtt(text, res.url || vttUrl));
      } catch {
        // No storyboard tiles: the bar still seeks.
      }
    })();
    return () => {
      current = false;
      controller.abort();
    };
  }, [vttUrl]);
  return tiles;
}

const round = (seconds: number) => Math.round(seconds * 10) / 10;
/** A time as players show it: whole seconds passed, not rounded up. */
const clock = (seconds: number) => formatDuration(Math.floor(seconds));

/**
 * A scrub bar under the player: hovering, or touching and dragging, shows the storyboard's tile for
 * that time; releasing (a click) seeks there. It is a slider for the keyboard: the arrow keys move a
 * tile's interval, Page Up/Down a tenth of the video, Home and End to either end.
 */
export function StoryboardScrubber({
  video,
  storyboard,
  chapters = [],
}: {
  video: { current: HTMLVideoElement | null };
  storyboard: StoryboardProps;
  /** The video's chapters: a tick at each start (after the first), and the title in the preview. */
  chapters?: readonly PlayerChapter[];
}) {
  const { duration } = storyboard;
  const tiles = useTiles(storyboard.vttUrl);
  const bar = useRef<HTMLDivElement>(null);
  const [now, setNow] = usePlaybackTime(video);
  // The time the preview shows (pointer over the bar, a drag, or a key just pressed); null: hidden.
  const [preview, setPreview] = useState<number | null>(null);
  const dragging = useRef(false);

  const seek = (seconds: number) => {
    const to = round(Math.min(duration, Math.max(0, seconds)));
    if (video.current) video.current.currentTime = to;
    setNow(to);
    return to;
  };
  const timeAt = (clientX: number) => {
    const rect = bar.current!.getBoundingClientRect();
    const fraction = rect.width > 0 ? (clientX - rect.left) / rect.width : 0;
    return round(Math.min(1, Math.max(0, fraction)) * duration);
  };

  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    dragging.current = true;
    try {
      bar.current?.setPointerCapture(e.pointerId);
    } catch {
      // A pointer the browser no longer tracks: the drag still works while it stays over the bar.
    }
    setPreview(timeAt(e.clientX));
  };
  const onPointerMove = (e: PointerEvent) => {
    if (dragging.current || e.pointerType === "mouse") setPreview(timeAt(e.clientX));
  };
  const onPointerUp = (e: PointerEvent) => {
    if (!dragging.current) return;
    dragging.current = false;
    seek(timeAt(e.clientX));
    // A finger lifted leaves nothing to hover: the preview goes with it.
    if (e.pointerType !== "mouse") setPreview(null);
  };
  const onPointerLeave = () => {
    if (!dragging.current) setPreview(null);
  };
  const onKeyDown = (e: KeyboardEvent) => {
    const step = Math.max(storyboard.intervalSeconds, 0.1);
    const moves: Record<string, number> = {
      ArrowRight: now + step,
      ArrowUp: now + step,
      ArrowLeft: now - step,
      ArrowDown: now - step,
      PageUp: now + duration / 10,
      PageDown: now - duration / 10,
      Home: 0,
      End: duration,
    };
    const target = moves[e.key];
    if (target === undefined) return;
    e.preventDefault();
    setPreview(seek(target));
  };

  const chapterTitle = (seconds: number) => {
    const chapter = chapterAt(chapters, seconds);
    return chapter ? ` · ${chapter.title}` : "";
  };
  const tile = preview !== null ? tileAt(tiles, preview) : null;
  const fraction = (seconds: number) => (duration > 0 ? Math.min(seconds, duration) / duration : 0);
  const percent = fraction(preview ?? now) * 100;
  // The preview is centred over its time, and kept inside the bar's width.
  const previewWidth = tile?.width ?? 64;
  const previewLeft = `clamp(0px, calc(${percent}% - ${previewWidth / 2}px), calc(100% - ${previewWidth}px))`;
  return (
    <div class="scrubber" data-testid="scrubber">
      <div
        ref={bar}
        class="scrubber-bar"
        role="slider"
        tabIndex={0}
        aria-label="Seek (storyboard)"
        aria-valuemin={0}
        aria-valuemax={round(duration)}
        aria-valuenow={round(now)}
        aria-valuetext={`${clock(now)} of ${clock(duration)}${chapterTitle(now)}`}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={() => {
          dragging.current = false;
          setPreview(null);
        }}
        onPointerLeave={onPointerLeave}
        onKeyDown={onKeyDown}
        onBlur={() => setPreview(null)}
      >
        <div class="scrubber-played" style={{ width: `${fraction(now) * 100}%` }} />
        {chapters
          .filter((c) => c.startSeconds > 0)
          .map((c) => (
            <div
              key={c.startSeconds}
              class="scrubber-chapter"
              data-testid="scrubber-chapter"
              title={c.title}
              style={{ left: `${fraction(c.startSeconds) * 100}%` }}
            />
          ))}
        {preview !== null && <div class="scrubber-mark" style={{ left: `${percent}%` }} />}
      </div>
      {preview !== null && (
        <div
          class="scrubber-preview"
          data-testid="scrubber-preview"
          aria-hidden="true"
          style={{ left: previewLeft, width: `${previewWidth}px` }}
        >
          {tile && (
            <div class="scrubber-tile" style={{ width: `${tile.width}px`, height: `${tile.height}px` }}>
              <img src={tile.sheet} alt="" style={{ left: `${-tile.x}px`, top: `${-tile.y}px` }} />
            </div>
          )}
          <span>
            {clock(preview)}
            {chapterTitle(preview)}
          </span>
        </div>
      )}
    </div>
  );
}
