import { describe, expect, test } from "vitest";
import {
  appendQueryToChildPlaylists,
  appendTokenToPlaylist,
  hasUriScheme,
  mediaPlaylistEnd,
  playlistOfSegments,
  segmentedPlaylist,
  slidingWindowPlaylist,
  withMediaGroup,
  withoutGroupDefault,
} from "../src/storage/playlists.ts";
import { withVariantBitRates } from "../src/shared/hls-playlists.ts";

describe("the API's playlist edits", () => {
  test("a media playlist's end: its last segment's number, target duration and whether it ended", () => {
    const text = (sequence: number, count: number, ended = false) =>
      [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:2",
        `#EXT-X-MEDIA-SEQUENCE:${sequence}`,
        ...Array.from({ length: count }, (_, i) => [`#EXTINF:2.000,`, `seg_${sequence + i}.ts`]).flat(),
        ...(ended ? ["#EXT-X-ENDLIST"] : []),
      ].join("\r\n");
    expect(mediaPlaylistEnd(text(0, 3))).toEqual({ lastSequence: 2, targetDuration: 2, finished: false });
    expect(mediaPlaylistEnd(text(40, 5, true))).toEqual({ lastSequence: 44, targetDuration: 2, finished: true });
    expect(mediaPlaylistEnd(text(0, 0))).toEqual({ lastSequence: -1, targetDuration: 2, finished: false });
    expect(mediaPlaylistEnd("#EXTM3U\n#EXT-X-TARGETDURATION:x\n")).toEqual({
      lastSequence: -1,
      targetDuration: 0,
      finished: false,
    });
  });

  test("the token goes on relative URI lines and on exactly the URI attributes, quoted commas and all", () => {
    const text = [
      "#EXTM3U",
      '#EXT-X-KEY:METHOD=AES-128,URI="key,1.bin",KEYFORMATURI="other.bin",IV=0x1',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x=1, y",URI="https://cdn.example/a.m3u8"',
      "#EXTINF:4.000,title = with, commas",
      "  seg_1.ts  ",
      "https://cdn.example/seg_2.ts",
      "",
    ].join("\r\n");
    expect(appendTokenToPlaylist(text, "t/1").split("\n")).toEqual([
      "#EXTM3U",
      '#EXT-X-KEY:METHOD=AES-128,URI="key,1.bin?token=t%2F1",KEYFORMATURI="other.bin",IV=0x1',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x=1, y",URI="https://cdn.example/a.m3u8"',
      "#EXTINF:4.000,title = with, commas",
      "seg_1.ts?token=t%2F1",
      "https://cdn.example/seg_2.ts",
      "",
    ]);
  });

  test("a tag whose attribute list does not close its quote is kept as written", () => {
    const line = '#EXT-X-MAP:URI="init.mp4",BYTERANGE="12';
    expect(appendTokenToPlaylist(line, "t")).toBe('#EXT-X-MAP:URI="init.mp4?token=t",BYTERANGE="12');
    expect(appendTokenToPlaylist('#EXT-X-MAP:URI="init.mp4', "t")).toBe('#EXT-X-MAP:URI="init.mp4');
  });

  test("a clip's range goes on child playlists only, after a query they already have", () => {
    const master = ['#EXT-X-MEDIA:TYPE=AUDIO,URI="audio/index.m3u8?x=1"', "720p/index.m3u8", "poster.jpg"].join("\n");
    expect(appendQueryToChildPlaylists(master, "s=1")).toBe(
      ['#EXT-X-MEDIA:TYPE=AUDIO,URI="audio/index.m3u8?x=1&s=1"', "720p/index.m3u8?s=1", "poster.jpg"].join("\n"),
    );
  });

  test("URI schemes", () => {
    expect(hasUriScheme("https://x")).toBe(true);
    expect(hasUriScheme("skd+1.a-b:x")).toBe(true);
    expect(hasUriScheme("seg:1.ts")).toBe(true);
    expect(hasUriScheme("1seg:x")).toBe(false);
    expect(hasUriScheme(":x")).toBe(false);
    expect(hasUriScheme("seg_1.ts")).toBe(false);
    expect(hasUriScheme("a/b:c")).toBe(false);
    expect(hasUriScheme("a".repeat(100_000))).toBe(false);
  });

  test("a media playlist cut to some of its segments keeps their tags and renumbers its sequence", () => {
    const text = [
      "#EXTM3U",
      "#EXT-X-TARGETDURATION:2",
      "#EXT-X-MEDIA-SEQUENCE:5",
      "#EXTINF:2.000,",
      "a.ts",
      "#EXT-X-DISCONTINUITY",
      "#EXTINF:1.500,",
      "b.ts",
      "#EXT-X-ENDLIST",
    ].join("\n");
    const playlist = segmentedPlaylist(text)!;
    expect(playlist.segments.map((s) => s.duration)).toEqual([2, 1.5]);
    expect(playlist.finished).toBe(true);
    expect(playlistOfSegments(playlist, [1], true)).toBe(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:6\n#EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nb.ts\n#EXT-X-ENDLIST\n",
    );
    expect(playlistOfSegments(playlist, [], false)).toBe("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n");
  });

  test("a media group goes before the first variant and every variant names it; a master without variants stays", () => {
    const master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nb.m3u8\n";
    const group = { type: "SUBTITLES", groupId: "subs", renditions: [['NAME="en"', 'URI="en.m3u8"']] };
    expect(withMediaGroup(master, group)).toBe(
      [
        "#EXTM3U",
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="en",URI="en.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1,SUBTITLES="subs"',
        "a.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=2,SUBTITLES="subs"',
        "b.m3u8",
        "",
      ].join("\n"),
    );
    expect(withMediaGroup("#EXTM3U\n", group)).toBe("#EXTM3U\n");
    expect(withMediaGroup(master, { ...group, renditions: [] })).toBe(master);
  });

  test("a group's default is taken off its renditions, and only that group's", () => {
    const master = [
      "#EXTM3U",
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"',
      '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="a, DEFAULT=YES",DEFAULT=YES,URI="en.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="audio"',
      "a.m3u8",
      "",
    ].join("\n");
    const edited = withoutGroupDefault(master, "AUDIO", "audio").split("\n");
    expect(edited[1]).toBe(
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=NO,AUTOSELECT=YES,URI="audio/index.m3u8"',
    );
    expect(edited.filter((_, i) => i !== 1)).toEqual(master.split("\n").filter((_, i) => i !== 1));
    expect(withoutGroupDefault(master, "AUDIO", "other")).toBe(master);
  });

  test("each variant states its video's measured rates plus its audio's; one without them keeps its bound", () => {
    const master = [
      "#EXTM3U",
      "#EXT-X-VERSION:6",
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",URI="audio/index.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"',
      "360p/index.m3u8",
      '#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=5,BANDWIDTH=400000,CODECS="avc1.64000d,mp4a.40.2",AUDIO="audio"',
      "",
      "240p/index.m3u8",
      '#EXT-X-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64000b,mp4a.40.2",AUDIO="audio"',
      "144p/index.m3u8",
      "",
    ].join("\n");
    const video = new Map([
      ["360p/index.m3u8", { peak: 600_000, average: 450_000 }],
      ["240p/index.m3u8", { peak: 250_001, average: 200_000 }],
    ]);
    expect(withVariantBitRates(master, video, { peak: 140_000, average: 131_000 }).split("\n")).toEqual([
      "#EXTM3U",
      "#EXT-X-VERSION:6",
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",URI="audio/index.m3u8"',
      // A comma inside CODECS's quotes stays in its attribute.
      '#EXT-X-STREAM-INF:BANDWIDTH=740000,AVERAGE-BANDWIDTH=581000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"',
      "360p/index.m3u8",
      // An AVERAGE-BANDWIDTH already there is replaced, wherever it stood.
      '#EXT-X-STREAM-INF:BANDWIDTH=390001,AVERAGE-BANDWIDTH=331000,CODECS="avc1.64000d,mp4a.40.2",AUDIO="audio"',
      "",
      "240p/index.m3u8",
      // Not measured: as declared.
      '#EXT-X-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64000b,mp4a.40.2",AUDIO="audio"',
      "144p/index.m3u8",
      "",
    ]);
    // Audio the variants play with but whose rates are unknown: every variant keeps its bound.
    expect(withVariantBitRates(master, video, undefined)).toBe(master);
    // No audio group: the video's rates alone.
    const silent = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000\n360p/index.m3u8\n";
    expect(withVariantBitRates(silent, video, undefined)).toBe(
      "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=600000,AVERAGE-BANDWIDTH=450000\n360p/index.m3u8\n",
    );
  });

  test("a second edit joining the same group adds its renditions; each variant still names the group once", () => {
    const master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n";
    const subs = { type: "SUBTITLES", groupId: "subs" };
    const captioned = withMediaGroup(master, { ...subs, renditions: [['NAME="en"', 'URI="en.m3u8"']] });
    expect(withMediaGroup(captioned, { ...subs, renditions: [['NAME="Chapters"', 'URI="ch.m3u8"']] })).toBe(
      [
        "#EXTM3U",
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="en",URI="en.m3u8"',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Chapters",URI="ch.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1,SUBTITLES="subs"',
        "a.m3u8",
        "",
      ].join("\n"),
    );
  });

  test("a live playlist's sliding window lists its last segments from their number on, without its EVENT type", () => {
    const live = (count: number, extra: string[] = []) =>
      [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        ...Array.from({ length: count }, (_, i) => [
          ...(extra[i] ? [extra[i]!] : []),
          "#EXTINF:2.000,",
          `seg_${String(i).padStart(5, "0")}.ts`,
        ]).flat(),
        "",
      ].join("\n");
    // 10 segments of 2 s, a 7 s window: the last 4 (8 s), numbered from 6.
    expect(slidingWindowPlaylist(live(10), 7)).toBe(
      [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:6",
        ...[6, 7, 8, 9].flatMap((i) => ["#EXTINF:2.000,", `seg_0000${i}.ts`]),
        "",
      ].join("\n"),
    );
    // Shorter than the window: every segment. Never under three target durations (6 s).
    expect(slidingWindowPlaylist(live(2), 60)).toContain("#EXT-X-MEDIA-SEQUENCE:0");
    expect(slidingWindowPlaylist(live(10), 1)).toContain("#EXT-X-MEDIA-SEQUENCE:7");
    // The discontinuities left out are counted.
    const cut = slidingWindowPlaylist(live(10, ["", "#EXT-X-DISCONTINUITY", "", "#EXT-X-DISCONTINUITY"]), 4)!;
    expect(cut).toContain("#EXT-X-DISCONTINUITY-SEQUENCE:2");
    expect(cut).toContain("#EXT-X-MEDIA-SEQUENCE:7");
    // A finished playlist (the recording) is not windowed.
    expect(slidingWindowPlaylist(`${live(10)}#EXT-X-ENDLIST\n`, 4)).toBeNull();
  });
});
