import { InvalidCaptionsError } from "../errors.ts";
import { vttTime } from "../shared/webvtt.ts";

/** Largest caption file accepted, in UTF-8 bytes. */
export const MAX_CAPTION_BYTES = 1024 * 1024;

/** Cue times past this are refused: no video here is that long, and a typo (`900:00:00`) is caught. */
const MAX_CUE_SECONDS = 100 * 3600;

export type CaptionFormat = "WEBVTT" | "SRT";

/** A caption file made ready to publish. */
export interface PublishableCaptions {
  /** Normalized WebVTT: LF line ends, no BOM, only cues (NOTE, STYLE and REGION blocks are dropped). */
  vtt: string;
  format: CaptionFormat;
  cueCount: number;
  /** End of the last cue, in seconds. */
  lastCueEnd: number;
}

interface Cue {
  id: string | null;
  start: number;
  end: number;
  settings: string;
  lines: string[];
}

const VTT_TIME = /^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$/;
const SRT_TIME = /^(\d+):(\d{2}):(\d{2})[,.](\d{3})$/;
const CUE_SETTING = /^(vertical|line|position|size|align|region):[\w.%,-]+$/;

/**
 * Checks a tenant's caption file and turns it into the WebVTT players get, with `header` (the
 * `X-TIMESTAMP-MAP` line) after `WEBVTT`. SRT is converted; `format` null means "the file says":
 * WebVTT starts with `WEBVTT`, anything else is read as SRT. Every problem is an
 * InvalidCaptionsError naming the line.
 */
export function toPublishableWebVtt(text: string, format: CaptionFormat | null, header: string): PublishableCaptions {
  if (Buffer.byteLength(text, "utf8") > MAX_CAPTION_BYTES) {
    throw new InvalidCaptionsError(`The file is larger than ${MAX_CAPTION_BYTES} bytes`, null);
  }
  if (!text.isWellFormed()) throw new InvalidCaptionsError("The text holds lone UTF-16 surrogates", null);
  // One pass over the whole text for each step, not one per line: a file of a million empty lines costs no more.
  const withoutBom = text.replace(/^\uFEFF/, "");
  const normalized = withoutBom.includes("\r")
    ? withoutBom.replaceAll("\r\n", "\n").replaceAll("\r", "\n")
    : withoutBom;
  const binaryAt = firstBinaryAt(normalized);
  if (binaryAt >= 0) {
    throw new InvalidCaptionsError(
      "Binary data or text that is not UTF-8: this is not a caption file",
      lineNumberAt(normalized, binaryAt),
    );
  }
  const lines = normalized.split("\n");
  if (lines.every(isBlankLine)) throw new InvalidCaptionsError("The file is empty", null);
  const isVtt = /^WEBVTT(?:[ \t]|$)/.test(lines[0]!);
  const detected: CaptionFormat = isVtt ? "WEBVTT" : "SRT";
  if (format !== null && format !== detected) {
    throw new InvalidCaptionsError(
      format === "WEBVTT"
        ? 'A WebVTT file starts with "WEBVTT" on its first line'
        : 'This is a WebVTT file (it starts with "WEBVTT"), not SRT',
      1,
    );
  }
  const cues = isVtt ? parseWebVtt(lines) : parseSrt(lines);
  if (cues.length === 0) throw new InvalidCaptionsError("The file has no cues", null);
  // Players want cues in start order; SRT files are not always written so. (The sort is stable: ties keep theirs.)
  const sorted = cues.toSorted((a, b) => a.start - b.start);
  const out = ["WEBVTT", header, ""];
  for (const cue of sorted) {
    if (cue.id !== null) out.push(cue.id);
    out.push(
      `${vttTime(cue.start)} --> ${vttTime(cue.end)}${cue.settings ? ` ${cue.settings}` : ""}`,
      ...cue.lines,
      "",
    );
  }
  return {
    vtt: out.join("\n"),
    format: detected,
    cueCount: cues.length,
    lastCueEnd: cues.reduce((max, c) => Math.max(max, c.end), 0),
  };
}

/** Only spaces and tabs. Not String.trim: a line of no-break spaces is cue text (it positions the cue). */
function isBlankLine(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    if (!isBlank(line[i])) return false;
  }
  return true;
}

/**
 * Where `text` first holds a control character (Unicode's Cc: U+0000–U+001F, U+007F–U+009F) other than tab
 * and line feed (the one line end left by then), or U+FFFD, what a decoder made of bytes that were not UTF-8;
 * -1 when nowhere.
 */
function firstBinaryAt(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f) || c === 0xfffd) return i;
  }
  return -1;
}

/** The 1-based number of the line that holds `index` of `text` (LF line ends). */
function lineNumberAt(text: string, index: number): number {
  let line = 1;
  for (let at = text.indexOf("\n"); at >= 0 && at < index; at = text.indexOf("\n", at + 1)) line++;
  return line;
}

/** The blocks of a file: runs of non-blank lines, each with the 1-based number of its first line. */
function blocks(lines: string[], from: number): { at: number; lines: string[] }[] {
  const found: { at: number; lines: string[] }[] = [];
  let current: { at: number; lines: string[] } | null = null;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    if (isBlankLine(line)) {
      current = null;
      continue;
    }
    if (!current) {
      current = { at: i + 1, lines: [] };
      found.push(current);
    }
    current.lines.push(line);
  }
  return found;
}

function parseWebVtt(lines: string[]): Cue[] {
  // The header runs to the first blank line; what it says (metadata, a foreign X-TIMESTAMP-MAP) is not kept.
  let body = lines.findIndex(isBlankLine);
  if (body < 0) body = lines.length;
  for (let i = 1; i < body; i++) {
    if (lines[i]!.includes("-->")) throw new InvalidCaptionsError("A blank line must follow the WEBVTT header", i + 1);
  }
  const cues: Cue[] = [];
  for (const block of blocks(lines, body)) {
    const first = block.lines[0]!;
    if (/^(NOTE|STYLE|REGION)(?:[ \t]|$)/.test(first) && !first.includes("-->")) continue;
    const timingAt = first.includes("-->") ? 0 : 1;
    const timing = block.lines[timingAt];
    if (timing === undefined || !timing.includes("-->")) {
      throw new InvalidCaptionsError(
        'Expected a cue: an optional identifier, then "00:00:01.000 --> 00:00:02.500"',
        block.at + timingAt,
      );
    }
    const [startText, rest] = splitTiming(timing);
    const [endText, ...settings] = rest.split(/[ \t]+/);
    const start = parseTime(startText, VTT_TIME, block.at + timingAt);
    const end = parseTime(endText!, VTT_TIME, block.at + timingAt);
    for (const setting of settings) {
      if (!CUE_SETTING.test(setting)) {
        throw new InvalidCaptionsError(
          `Unknown cue setting "${clip(setting)}" (vertical, line, position, size, align, region)`,
          block.at + timingAt,
        );
      }
    }
    cues.push(cueOf(timingAt === 1 ? first : null, start, end, settings.join(" "), block, timingAt + 1));
  }
  return cues;
}

function parseSrt(lines: string[]): Cue[] {
  const cues: Cue[] = [];
  for (const block of blocks(lines, 0)) {
    const timingAt = /^\d+$/.test(block.lines[0]!.trim()) ? 1 : 0;
    const timing = block.lines[timingAt];
    if (timing === undefined || !timing.includes("-->")) {
      throw new InvalidCaptionsError(
        'Expected a subtitle: its number, then "00:00:01,000 --> 00:00:02,500", then its text',
        block.at + timingAt,
      );
    }
    const [startText, rest] = splitTiming(timing);
    const endText = withoutSrtBox(rest);
    const start = parseTime(startText, SRT_TIME, block.at + timingAt);
    const end = parseTime(endText, SRT_TIME, block.at + timingAt);
    const cue = cueOf(null, start, end, "", block, timingAt + 1);
    // WebVTT knows <b>, <i>, <u> but not SRT's <font …> and ASS overrides like {\an8}: dropped.
    cue.lines = cue.lines.map((l) => withoutSpans(withoutSpans(l, fontTagNameEnd, ">"), assOverrideEnd, "}"));
    cues.push(cue);
  }
  return cues;
}

// Scanned by hand, in one pass: a regex such as /[ \t]+X1:.*$/ or /<\/?font\b[^>]*>/gi tries every start and
// backtracks over the rest of the line, quadratic in a long run of blanks, `<font` or `{\`: seconds of a blocked
// event loop per request.

const isBlank = (c: string | undefined): boolean => c === " " || c === "\t";
const isWordChar = (c: string | undefined): boolean => c !== undefined && /^\w$/.test(c);

/** `rest` (what follows an SRT timing line's arrow) less a box some writers put after the end time (`X1:… Y2:…`). */
function withoutSrtBox(rest: string): string {
  // The box runs to the end of the line: past a U+2028/9 (which `.` never matched), the text is not one.
  const from = Math.max(rest.lastIndexOf("\u2028"), rest.lastIndexOf("\u2029")) + 1;
  for (let at = rest.indexOf("X1:", from); at >= 0; at = rest.indexOf("X1:", at + 1)) {
    if (at === 0 || !isBlank(rest[at - 1])) continue;
    let start = at - 1;
    while (start > 0 && isBlank(rest[start - 1])) start--;
    return rest.slice(0, start);
  }
  return rest;
}

/** After `<font` or `</font` (any case) at `at`, where the tag's attributes start; -1 when no such tag starts there. */
function fontTagNameEnd(line: string, at: number): number {
  if (line[at] !== "<") return -1;
  const name = line[at + 1] === "/" ? at + 2 : at + 1;
  const end = name + 4;
  return line.slice(name, end).toLowerCase() === "font" && !isWordChar(line[end]) ? end : -1;
}

/** After `{\` at `at` (an ASS override such as `{\an8}`), or -1. */
const assOverrideEnd = (line: string, at: number): number => (line[at] === "{" && line[at + 1] === "\\" ? at + 2 : -1);

/**
 * `line` less every span that `openerEnd` says opens at a position and that runs to the next `close`,
 * leftmost first, as a global regex replace would. Each closing character is searched for once.
 */
function withoutSpans(line: string, openerEnd: (line: string, at: number) => number, close: string): string {
  let kept = "";
  let copied = 0;
  for (let at = 0; at < line.length; at++) {
    const inner = openerEnd(line, at);
    if (inner < 0) continue;
    const closeAt = line.indexOf(close, inner);
    // No closing character left: no span can end, here or further on.
    if (closeAt < 0) break;
    kept += line.slice(copied, at);
    copied = closeAt + 1;
    at = closeAt;
  }
  return copied === 0 ? line : kept + line.slice(copied);
}

function splitTiming(line: string): [string, string] {
  const at = line.indexOf("-->");
  return [line.slice(0, at).trim(), line.slice(at + 3).trim()];
}

function cueOf(
  id: string | null,
  start: number,
  end: number,
  settings: string,
  block: { at: number; lines: string[] },
  textFrom: number,
): Cue {
  if (end <= start) {
    throw new InvalidCaptionsError("The cue ends before it starts (or when it starts)", block.at + textFrom - 1);
  }
  const lines = block.lines.slice(textFrom);
  const arrow = lines.findIndex((l) => l.includes("-->"));
  if (arrow >= 0) {
    throw new InvalidCaptionsError(
      'Cue text must not contain "-->" (is a blank line missing before it?)',
      block.at + textFrom + arrow,
    );
  }
  return { id, start, end, settings, lines };
}

function parseTime(text: string, pattern: RegExp, lineNumber: number): number {
  const m = pattern.exec(text);
  const example = pattern === VTT_TIME ? "00:01:02.500" : "00:01:02,500";
  if (!m) throw new InvalidCaptionsError(`"${clip(text)}" is not a timestamp like ${example}`, lineNumber);
  const [h, min, s, ms] = [Number(m[1] ?? 0), Number(m[2]), Number(m[3]), Number(m[4])];
  if (min > 59 || s > 59) {
    throw new InvalidCaptionsError(`"${clip(text)}" has minutes or seconds past 59`, lineNumber);
  }
  const seconds = h * 3600 + min * 60 + s + ms / 1000;
  if (seconds > MAX_CUE_SECONDS) {
    throw new InvalidCaptionsError(`"${clip(text)}" is past ${MAX_CUE_SECONDS / 3600} hours`, lineNumber);
  }
  return seconds;
}

/** A caption file's bytes as text; bytes that are not UTF-8 become U+FFFD, which the checks refuse with their line. */
export function decodeCaptionBytes(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false, ignoreBOM: false }).decode(bytes);
}

/** Tenant text quoted in an error, cut short. */
function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
