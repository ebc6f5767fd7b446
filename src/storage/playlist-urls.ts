import { videoKeyParts, videoPrefix } from "../protocol/storage-layout.ts";
const URI_ATTRIBUTE = /URI="([^"]*)"/g;
const HAS_SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const SIGN_CONCURRENCY = 32;

/** The storage key a relative URI in the playlist stored at `playlistKey` points to. */
export function resolvePlaylistUri(playlistKey: string, uri: string): string | null {
  if (HAS_SCHEME.test(uri) || uri.startsWith("/")) return null;
  const resolved = new URL(uri, `http://storage.invalid/${playlistKey}`);
  if (resolved.search || resolved.hash) return null;
  return decodeURIComponent(resolved.pathname.slice(1));
}

/**
 * Rewrites an HLS playlist stored at `playlistKey` (in `videos/{id}/hls/…`) for players that
 * cannot reach the bucket by relative URL: every media URI (segment lines, and `URI="…"` of
 * `EXT-X-MAP`, `EXT-X-KEY` and the like) that resolves to an object of the same video becomes
 * `urlFor(key)`, a signed URL. Playlist URIs (`.m3u8`) and WebVTT files (a caption track's, whose
 * header the API writes as it serves it) stay relative, so players keep asking the API for them; absolute URIs and URIs leaving the video's prefix are left alone. `urlFor` is
 * called once per key, however often it appears.
 */
export async function rewritePlaylistUris(
  text: string,
  playlistKey: string,
  urlFor: (key: string) => Promise<string>,
): Promise<string> {
  const videoId = videoKeyParts(playlistKey)?.videoId;
  if (!videoId) throw new Error(`Not a video's playlist: ${playlistKey}`);
  const ownPrefix = `${videoPrefix(videoId)}/`;
  const lines = text.split(/\r?\n/);

  const keyFor = (uri: string): string | null => {
    const path = uri.split(/[?#]/)[0]!;
    if (path.endsWith(".m3u8") || path.endsWith(".vtt")) return null;
    const key = resolvePlaylistUri(playlistKey, uri);
    return key?.startsWith(ownPrefix) ? key : null;
  };
  const wanted = new Set<string>();
  for (const line of lines) {
    if (line.startsWith("#")) {
      for (const m of line.matchAll(URI_ATTRIBUTE)) {
        const key = keyFor(m[1]!);
        if (key) wanted.add(key);
      }
    } else if (line.trim()) {
      const key = keyFor(line.trim());
      if (key) wanted.add(key);
    }
  }
  const urls = new Map<string, string>();
  // Bounded, because without a local key every signature is a call to the IAM signBlob API.
  const keys = [...wanted];
  for (let i = 0; i < keys.length; i += SIGN_CONCURRENCY) {
    const batch = keys.slice(i, i + SIGN_CONCURRENCY);
    const signed = await Promise.all(batch.map(urlFor));
    for (const [j, key] of batch.entries()) urls.set(key, signed[j]!);
  }
  const replace = (uri: string) => {
    const key = keyFor(uri);
    return key ? urls.get(key)! : uri;
  };

  return lines
    .map((line) => {
      if (line.startsWith("#")) return line.replace(URI_ATTRIBUTE, (_all, uri: string) => `URI="${replace(uri)}"`);
      return line.trim() ? replace(line.trim()) : line;
    })
    .join("\n");
}
