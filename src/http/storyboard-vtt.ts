/** A storyboard cue's text: a sheet named beside the VTT file, and the tile's rectangle. */
const CUE_IMAGE = /^([\w-]+\.jpg)(#xywh=\d+,\d+,\d+,\d+)$/;

/**
 * The storyboard's WebVTT text with each sheet URI replaced by `rewrite(uri)` (the fragment kept):
 * a playback token appended, or a bucket's signed URL. Sheets are rewritten once each.
 */
export async function rewriteStoryboardUris(
  text: string,
  rewrite: (uri: string) => string | Promise<string>,
): Promise<string> {
  const rewritten = new Map<string, string>();
  const lines = text.split("\n");
  for (const [i, line] of lines.entries()) {
    const m = CUE_IMAGE.exec(line.trim());
    if (!m) continue;
    const uri = m[1]!;
    if (!rewritten.has(uri)) rewritten.set(uri, await rewrite(uri));
    lines[i] = `${rewritten.get(uri)}${m[2]}`;
  }
  return lines.join("\n");
}
