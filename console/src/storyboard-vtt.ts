/** One storyboard tile: the time it covers and its rectangle in a sprite sheet. */
export interface StoryboardTile {
  start: number;
  end: number;
  /** The sheet's absolute URL. */
  sheet: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A storyboard's WebVTT larger than this is not read (the API's are a few kB an hour). */
export const MAX_STORYBOARD_VTT_CHARS = 2 * 1024 * 1024;
/** A tile's rectangle is at most this many pixels each way. */
const MAX_TILE_PIXELS = 100_000;

/** Digits only (at most `maxDigits`), as a number; NaN for anything else. */
function digits(text: string, maxDigits: number): number {
  if (text.length === 0 || text.length > maxDigits) return Number.NaN;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i) - 48;
    if (code < 0 || code > 9) return Number.NaN;
    value = value * 10 + code;
  }
  return value;
}

/** `hh:mm:ss.ttt` or `mm:ss.ttt` in seconds; NaN when it is neither. */
function timestamp(text: string): number {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 3) return Number.NaN;
  const [secondsText, fraction = "", extra] = parts.pop()!.split(".");
  if (extra !== undefined || fraction.length !== 3) return Number.NaN;
  const hours = parts.length === 2 ? digits(parts[0]!, 3) : 0;
  const minutes = digits(parts.at(-1)!, 2);
  const seconds = digits(secondsText!, 2);
  if (minutes > 59 || seconds > 59) return Number.NaN;
  return hours * 3600 + minutes * 60 + seconds + digits(fraction, 3) / 1000;
}

/** `sheet.jpg#xywh=x,y,w,h` resolved against the VTT's URL (`sheets` keeps each name's); null for anything else. */
function tileImage(
  line: string,
  base: string,
  sheets: Map<string, string | null>,
): Omit<StoryboardTile, "start" | "end"> | null {
  const hash = line.indexOf("#xywh=");
  if (hash <= 0) return null;
  const numbers = line.slice(hash + 6).split(",");
  if (numbers.length !== 4) return null;
  const [x, y, width, height] = numbers.map((n) => digits(n, 6)) as [number, number, number, number];
  if (![x, y, width, height].every((n) => n <= MAX_TILE_PIXELS) || width === 0 || height === 0) return null;
  const name = line.slice(0, hash);
  if (!sheets.has(name)) sheets.set(name, sheetUrl(name, base));
  const sheet = sheets.get(name);
  return sheet ? { sheet, x, y, width, height } : null;
}

/** A sheet's http(s) URL, relative to the VTT file's; null for any other. */
function sheetUrl(name: string, base: string): string | null {
  try {
    const url = new URL(name, base);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The tiles of a storyboard's WebVTT (a cue's text is `sheet.jpg#xywh=x,y,w,h`), in start order.
 * One pass over the lines with hand-written number parsing and no regular expression: text from
 * storage is read as hostile, so its cost stays proportional to its size, which is bounded.
 */
export function parseStoryboardVtt(text: string, vttUrl: string): StoryboardTile[] {
  if (text.length > MAX_STORYBOARD_VTT_CHARS || !text.startsWith("WEBVTT")) return [];
  const lines = text.split("\n");
  const tiles: StoryboardTile[] = [];
  const sheets = new Map<string, string | null>();
  for (let i = 0; i < lines.length - 1; i++) {
    const line = lines[i]!;
    const arrow = line.indexOf("-->");
    if (arrow < 0) continue;
    const start = timestamp(line.slice(0, arrow).trim());
    // Cue settings may follow the end time after a space.
    const end = timestamp(
      line
        .slice(arrow + 3)
        .trim()
        .split(" ", 1)[0]!,
    );
    if (!(end > start)) continue;
    const image = tileImage(lines[i + 1]!.trim(), vttUrl, sheets);
    if (image) tiles.push({ start, end, ...image });
    i++;
  }
  return tiles.sort((a, b) => a.start - b.start);
}

/** The tile covering `time` (the last one before it, past the end), by binary search; null when there are none. */
export function tileAt(tiles: readonly StoryboardTile[], time: number): StoryboardTile | null {
  if (tiles.length === 0) return null;
  let low = 0;
  let high = tiles.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (tiles[middle]!.start <= time) low = middle;
    else high = middle - 1;
  }
  return tiles[low]!;
}
