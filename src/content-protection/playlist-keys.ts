import { segmentNumberOf } from "../protocol/storage-layout.ts";
import { playlistLines } from "../shared/hls-playlists.ts";
import { segmentIv, segmentKeyGroup } from "../shared/segment-keys.ts";
import type { ContentProtection } from "../generated/prisma/client.ts";

/** A protected video's protection, as its playlists are served with it. */
export interface ServedProtection {
  method: ContentProtection;
  keyRotationSegments: number | null;
}

/** Where a video's segment keys are served: `/media/videos/{id}/keys/{group}.key` (contentKeyRequest). */
const KEYS_FOLDER = "keys";

/**
 * The URI of key group `group` from the rung playlist stored at `playlistKey`
 * (`videos/{id}/hls/{rung}/index.m3u8`): relative, so it comes back to the API whatever serves the
 * segments, and the media route's token is added to it as to any relative URI.
 */
function keyUri(playlistKey: string, name: string): string {
  const depth = playlistKey.split("/").length - 3;
  return `${"../".repeat(depth)}${KEYS_FOLDER}/${name}`;
}

/**
 * A rung playlist as a protected video's players get it: before each segment, the `EXT-X-KEY`
 * that decrypts it, its key group's URI and its number as an explicit IV (so an instant clip's cut
 * or a sliding window changes neither). Nothing of it is stored: keys and their URIs are only ever
 * in this answer. The init segment (`EXT-X-MAP`, in the header) stays clear. A URI that is not a
 * segment's keeps no key line (the worker never lists one).
 */
export function withSegmentKeys(text: string, playlistKey: string, protection: ServedProtection): string {
  const out: string[] = [];
  for (const line of playlistLines(text)) {
    const n = line.startsWith("#") ? null : segmentNumberOf(line.trim());
    if (n !== null && protection.method === "CENC") {
      // The key id is in the init (tenc); the URI is where an EME player (hls.js licenseXhrSetup) asks for the licence.
      const uri = keyUri(playlistKey, CLEARKEY_LICENCE);
      out.push(`#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey",KEYFORMATVERSIONS="1",URI="${uri}"`);
    } else if (n !== null) {
      const group = segmentKeyGroup(n, protection.keyRotationSegments);
      out.push(
        `#EXT-X-KEY:METHOD=AES-128,URI="${keyUri(playlistKey, `${group}.key`)}",IV=0x${segmentIv(n).toString("hex")}`,
      );
    }
    out.push(line);
  }
  return out.join("\n");
}

/** Where a CENC video's ClearKey licences are asked for: `/media/videos/{id}/keys/clearkey` (POST). */
const CLEARKEY_LICENCE = "clearkey";

/** The video whose ClearKey licence a `/media/` path names (`videos/{id}/keys/clearkey`), or null. */
export function clearKeyLicenceRequest(mediaPath: string): { videoId: string } | null {
  const parts = mediaPath.split("/");
  if (parts.length !== 4 || parts[0] !== "videos" || parts[2] !== KEYS_FOLDER || parts[3] !== CLEARKEY_LICENCE) {
    return null;
  }
  return parts[1] ? { videoId: parts[1] } : null;
}

/** The video and key group a `/media/` path names (`videos/{id}/keys/{group}.key`), or null for any other path. */
export function contentKeyRequest(mediaPath: string): { videoId: string; group: number } | null {
  const parts = mediaPath.split("/");
  if (parts.length !== 4 || parts[0] !== "videos" || parts[2] !== KEYS_FOLDER) return null;
  const m = /^(\d{1,7})\.key$/.exec(parts[3]!);
  return m && parts[1] ? { videoId: parts[1], group: Number(m[1]) } : null;
}
