import { describe, expect, it } from "vitest";
import { userFacingError } from "../src/jobs/user-facing-error.ts";

describe("errors as users see them carry no internal paths or addresses", () => {
  it.each([
    [
      "Storage is full: ENOSPC: no space left on device, open " +
        "'/tmp/videograph-worker-abc/videograph-1f2e-xyz/720p/seg_00003.ts'",
      "Storage is full: ENOSPC: no space left on device, open '720p/seg_00003.ts'",
    ],
    [
      "ENOSPC: no space left on device, copyfile 'poster.jpg' -> '/srv/data/videos/v1/thumbnails/poster.jpg.tmp'",
      "ENOSPC: no space left on device, copyfile 'poster.jpg' -> 'videos/v1/thumbnails/poster.jpg.tmp'",
    ],
    [
      "ENOSPC: no space left on device, copyfile 'poster.jpg' -> 'disk/data/videos/v1/thumbnails/poster.jpg.tmp'",
      "ENOSPC: no space left on device, copyfile 'poster.jpg' -> 'videos/v1/thumbnails/poster.jpg.tmp'",
    ],
    ["could not read ./data/tenants/t1/assets/bg.mp4", "could not read tenants/t1/assets/bg.mp4"],
    [
      "Could not read the source: Server returned 403 for https://storage.example/media/videos/v1/source/upload",
      "Could not read the source: Server returned 403 for https://storage.example/media/videos/v1/source/upload",
    ],
    ["The scene failed at line 5: NameError", "The scene failed at line 5: NameError"],
    [
      "Storage is unavailable: connect ECONNREFUSED 127.0.0.1:51707",
      "Storage is unavailable: connect ECONNREFUSED (an internal address)",
    ],
    ["connect ETIMEDOUT 10.0.3.7:443.", "connect ETIMEDOUT (an internal address)."],
    ["connect ECONNREFUSED [::1]:9000", "connect ECONNREFUSED (an internal address)"],
    // A signed URL's query (its signature) and its internal host: the live feed's error as ffmpeg wrote it.
    [
      "Could not read the feed: http://127.0.0.1:4000/live/v1/feeds/v1.flv?expires=1795000000&sig=c2lnbmF0dXJl: HTTP error 404 Not Found",
      "Could not read the feed: http://(an internal address)/live/v1/feeds/v1.flv?… HTTP error 404 Not Found",
    ],
    [
      "GET 'https://bucket.example/videos/v1/a.ts?X-Goog-Signature=abc' failed",
      "GET 'https://bucket.example/videos/v1/a.ts?…' failed",
    ],
    ["Which one? a/b? c", "Which one? a/b?… c"],
    // A database's own files (its data dir inside DATA_DIR, full): relative paths no other rule takes.
    [
      'could not extend file "base/16384/17359": No space left on device',
      'could not extend file "(a database file)": No space left on device',
    ],
    ['could not write to file "pg_wal/xlogtemp.123"', 'could not write to file "(a database file)"'],
    ["could not open file global/1262", "could not open file (a database file)"],
  ])("%s", (raw, shown) => {
    expect(userFacingError(raw)).toBe(shown);
  });
});
