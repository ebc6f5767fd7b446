/** Longest file name handed out, extension included. */
const MAX_NAME_LENGTH = 100;

/** What a `download` file name may be: letters, digits, `-` and `_`, then the file's own extension. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,90}\.(mp4|m4a)$/;

/**
 * A file name for a download of a video's file, from its title, safe whatever the title holds:
 * ASCII letters and digits (accents dropped), runs of anything else become one `-`, no dots, no
 * slashes, no quotes, no control characters; `video` when nothing is left. `suffix` tells the
 * renditions apart (`my-talk-highest.mp4`).
 */
export function downloadFilename(title: string, suffix: string, extension: "mp4" | "m4a"): string {
  const ascii = title.normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  const room = MAX_NAME_LENGTH - suffix.length - extension.length - 2;
  const base =
    ascii
      .replace(/[^A-Za-z0-9_]+/g, "-")
      .replace(/^[-_]+/, "")
      .slice(0, room)
      .replace(/-+$/, "") || "video";
  return `${base}-${suffix}.${extension}`;
}

/** Whether `name` is a file name `downloadFilename` could make for a file with `extension` (a URL may say anything). */
export function isSafeDownloadName(name: string, extension: string): boolean {
  return SAFE_NAME.test(name) && name.endsWith(extension);
}
