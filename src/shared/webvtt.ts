/** `HH:MM:SS.mmm`, as WebVTT writes a cue's times. */
export function vttTime(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/** One cue: its times in seconds and its text (plain text: `&`, `<` and `>` are escaped when written). */
export interface WebVttCue {
  start: number;
  end: number;
  text: string;
}

/**
 * A cue's text as WebVTT shows it literally: `&`, `<` and `>` escaped (so no `-->` either), no blank
 * line (which would end the cue).
 */
function cueText(text: string): string {
  const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return escaped
    .split(/\r\n|\r|\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .join("\n");
}

/** A WebVTT file: `WEBVTT`, the `headers` lines (an `X-TIMESTAMP-MAP`), then the cues with text, in order. */
export function writeWebVtt(headers: readonly string[], cues: readonly WebVttCue[]): string {
  const blocks = cues
    .map((cue) => ({ ...cue, text: cueText(cue.text) }))
    .filter((cue) => cue.text !== "")
    .map((cue) => `${vttTime(cue.start)} --> ${vttTime(Math.max(cue.end, cue.start + 0.001))}\n${cue.text}`);
  return `${[["WEBVTT", ...headers].join("\n"), ...blocks].join("\n\n")}\n`;
}
