import { describe, expect, it } from "vitest";
import { withSubtitles } from "../src/captions/subtitle-playlists.ts";
import { type DashReads, dashManifest, MAX_DASH_SEGMENTS } from "../src/dash/dash-manifest.ts";
import { MAX_DASH_PLAYLIST_CHARS, readMaster, readMediaPlaylist } from "../src/dash/hls-reading.ts";
import { dashFrameRate, xmlEscape } from "../src/dash/mpd.ts";
import type { ProbeResult, Rung } from "../src/protocol/media-facts.ts";
import { masterPlaylist, mediaPlaylist } from "../src/shared/hls-playlists.ts";
import { appendTokenToPlaylist, singleSegmentPlaylist, withMediaGroup } from "../src/storage/playlists.ts";
import { cpuTimed } from "./support/cpu-timed.ts";

const HLS = "videos/v1/hls";
const LADDER: Rung[] = [
  { name: "360p", kind: "VIDEO", width: 640, height: 360, bandwidth: 1_000_000, codecs: "avc1.64001e" },
  { name: "144p", kind: "VIDEO", width: 256, height: 144, bandwidth: 300_000, codecs: "avc1.64000c" },
  { name: "audio", kind: "AUDIO", width: null, height: null, bandwidth: 140_000, codecs: "mp4a.40.2" },
];
const PROBE: ProbeResult = {
  duration: 9,
  width: 640,
  height: 360,
  fps: 30000 / 1001,
  rotation: 0,
  hasAudio: true,
  videoCodec: "h264",
  audioCodec: "aac",
};
const SEGMENTS = [1, 2, 2, 2, 2].map((duration, i) => ({ uri: `seg_${String(i).padStart(5, "0")}.m4s`, duration }));

const fmp4Rung = (endList = true) => mediaPlaylist(SEGMENTS, { targetDuration: 2, endList, map: "init.mp4" });

/** Reads answering from `files` (keys under the video's `hls/`, or whole keys), linked with a playback token. */
function readsOf(files: Record<string, string>, token = ""): DashReads {
  return {
    playlistText: async (key) => files[key.startsWith(`${HLS}/`) ? key.slice(HLS.length + 1) : key] ?? null,
    linked: async (text) => (token ? appendTokenToPlaylist(text, token) : text),
  };
}

const ladderFiles = (master = masterPlaylist(LADDER, PROBE)): Record<string, string> => ({
  "master.m3u8": master,
  "360p/index.m3u8": fmp4Rung(),
  "144p/index.m3u8": fmp4Rung(),
  "audio/index.m3u8": fmp4Rung(),
});

async function mpdOf(files: Record<string, string>, token = ""): Promise<string> {
  const outcome = await dashManifest(`${HLS}/master.m3u8`, readsOf(files, token));
  if ("refused" in outcome) throw new Error(outcome.problem);
  return outcome.mpd;
}

const adaptationSets = (mpd: string) =>
  [...mpd.matchAll(/<AdaptationSet\b[\s\S]*?<\/AdaptationSet>/g)].map((m) => m[0]);

describe("the MPD made from a ladder's HLS playlists", () => {
  it("a video set of every rung, an audio set, each a SegmentList over the rung's own init and segments", async () => {
    const mpd = await mpdOf(ladderFiles());
    const [video, audio, ...rest] = adaptationSets(mpd);
    expect(rest).toEqual([]);
    expect(mpd).toContain('type="static"');
    expect(mpd).toContain('mediaPresentationDuration="PT9S"');
    expect(video).toContain('maxWidth="640" maxHeight="360"');
    // A variant's BANDWIDTH counts its audio; the representation does not.
    expect(video).toContain(
      '<Representation id="360p" bandwidth="872000" codecs="avc1.64001e" width="640" height="360" frameRate="30000/1001">',
    );
    expect(video).toContain("<BaseURL>144p/</BaseURL>");
    expect(audio).toContain('<Representation id="audio" bandwidth="128000" codecs="mp4a.40.2">');
    expect(audio).toContain('<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>');
    // Time 0 sits 10 s into fMP4 segments; equal lengths are one S with a repeat count.
    expect(audio).toContain('<SegmentList timescale="90000" presentationTimeOffset="900000">');
    expect(audio).toContain('<SegmentTimeline><S t="900000" d="90000"/><S d="180000" r="3"/></SegmentTimeline>');
    expect(audio!.match(/<SegmentURL media="seg_\d{5}\.m4s"\/>/g)).toHaveLength(5);
    expect(audio).toContain('<Initialization sourceURL="init.mp4"/>');
  });

  it("every URL carries what the HLS edits carry: the token, escaped for XML", async () => {
    const mpd = await mpdOf(ladderFiles(), "s.123.abc");
    expect(mpd).toContain('<SegmentURL media="seg_00000.m4s?token=s.123.abc"/>');
    expect(mpd).toContain('<Initialization sourceURL="init.mp4?token=s.123.abc"/>');
    const signed = readsOf(ladderFiles());
    signed.linked = async (text) =>
      text.replaceAll("seg_", "https://bucket.example/seg_").replace(/\.m4s$/gm, ".m4s?a=1&b=2");
    const outcome = await dashManifest(`${HLS}/master.m3u8`, signed);
    expect("mpd" in outcome && outcome.mpd).toContain('media="https://bucket.example/seg_00004.m4s?a=1&amp;b=2"');
  });

  it("caption tracks are WebVTT text sets with their language and name, escaped; the hearing impaired's role caption", async () => {
    const tracks = [
      { id: "c1", language: "en", name: "English </Label><x>&", isDefault: true, autoselect: true },
      { id: "c2", language: "de", name: "Deutsch\u0001 (SDH)", isDefault: false, autoselect: false },
    ].map((t, i) => ({ ...t, forced: false, hearingImpaired: i === 1 }));
    const files = ladderFiles(withSubtitles(masterPlaylist(LADDER, PROBE), tracks));
    for (const { id } of tracks) files[`videos/v1/captions/${id}/index.m3u8`] = singleSegmentPlaylist("track.vtt", 9);
    const [, , english, german] = adaptationSets(await mpdOf(files, "s.1.x"));
    expect(english).toContain('contentType="text" mimeType="text/vtt" lang="en"');
    expect(english).toContain("<Label>English &lt;/Label&gt;&lt;x&gt;&amp;</Label>");
    expect(english).toContain('value="subtitle"/>');
    expect(english).toContain("<BaseURL>../captions/c1/track.vtt?token=s.1.x</BaseURL>");
    expect(german).toContain("<Label>Deutsch (SDH)</Label>");
    expect(german).toContain('value="caption"/>');
    expect(german).not.toContain('value="main"');
  });

  it("an audio track the master lists in its audio group is one more audio set; one still encoding is left out", async () => {
    const rendition = (name: string, language: string, uri: string) => [
      `NAME="${name}"`,
      `LANGUAGE="${language}"`,
      "DEFAULT=NO",
      "AUTOSELECT=YES",
      `URI="${uri}"`,
    ];
    const master = withMediaGroup(masterPlaylist(LADDER, PROBE), {
      type: "AUDIO",
      groupId: "audio",
      renditions: [
        rendition("Deutsch", "de", "../audio/t1/index.m3u8"),
        rendition("Français", "fr", "../audio/t2/index.m3u8"),
      ],
    });
    const files = {
      ...ladderFiles(master),
      "videos/v1/audio/t1/index.m3u8": fmp4Rung(),
      "videos/v1/audio/t2/index.m3u8": fmp4Rung(false),
    };
    const sets = adaptationSets(await mpdOf(files));
    expect(sets).toHaveLength(3);
    expect(sets[2]).toContain('contentType="audio" mimeType="audio/mp4" lang="de"');
    expect(sets[2]).toContain("<Label>Deutsch</Label>");
    expect(sets[2]).toContain('value="alternate"');
    expect(sets[2]).toContain("<BaseURL>../audio/t1/</BaseURL>");
    expect(sets[2]).toContain('<Representation id="t1"');
  });

  it("an audio-only video's AAC rungs are one audio set, without a video set", async () => {
    const rungs: Rung[] = [
      { name: "a128", kind: "AUDIO", width: null, height: null, bandwidth: 140_000, codecs: "mp4a.40.2" },
      { name: "a64", kind: "AUDIO", width: null, height: null, bandwidth: 70_000, codecs: "mp4a.40.5" },
    ];
    const probe = { ...PROBE, width: null, height: null, fps: 0, videoCodec: null };
    const files = {
      "master.m3u8": masterPlaylist(rungs, probe),
      "a128/index.m3u8": fmp4Rung(),
      "a64/index.m3u8": fmp4Rung(),
    };
    const sets = adaptationSets(await mpdOf(files));
    expect(sets).toHaveLength(1);
    expect(sets[0]).toContain('contentType="audio"');
    expect(sets[0]).toContain('<Representation id="a128" bandwidth="140000" codecs="mp4a.40.2">');
    expect(sets[0]).toContain('<Representation id="a64" bandwidth="70000" codecs="mp4a.40.5">');
  });

  it("refuses MPEG-TS segments, a rung still growing, a discontinuity, a missing rung and a missing master", async () => {
    const tsRung = mediaPlaylist(SEGMENTS, { targetDuration: 2, endList: true });
    const refusedWith = async (files: Record<string, string>) => {
      const outcome = await dashManifest(`${HLS}/master.m3u8`, readsOf(files));
      return "refused" in outcome ? outcome.refused : "mpd";
    };
    expect(await refusedWith({ ...ladderFiles(), "144p/index.m3u8": tsRung })).toBe("not fragmented");
    expect(await refusedWith({ ...ladderFiles(), "audio/index.m3u8": fmp4Rung(false) })).toBe("not finished");
    const takenOver = mediaPlaylist(
      SEGMENTS.map((s, i) => ({ ...s, discontinuity: i === 3 })),
      { targetDuration: 2, endList: true, map: "init.mp4" },
    );
    expect(await refusedWith({ ...ladderFiles(), "360p/index.m3u8": takenOver })).toBe("unlistable");
    const { "144p/index.m3u8": _, ...missing } = ladderFiles();
    expect(await refusedWith(missing)).toBe("not found");
    expect(await refusedWith({})).toBe("not found");
  });

  it("writes frame rates as DASH does and drops what XML cannot carry", () => {
    expect(dashFrameRate(25)).toBe("25");
    expect(dashFrameRate(29.97)).toBe("30000/1001");
    expect(dashFrameRate(59.94)).toBe("60000/1001");
    expect(dashFrameRate(12.5)).toBe("12500/1000");
    expect(xmlEscape(`a<b>&"c'\u0000\u0008\uFFFE\uD800d`)).toBe("a&lt;b&gt;&amp;&quot;c&apos;d");
  });
});

/**
 * Reading a playlist must cost time in proportion to its size: at most this much of the thread's CPU
 * time per MiB (as test/caption-parsing-time.test.ts bounds the caption parser).
 */
const CPU_MS_PER_MIB = 500;

/** `unit` repeated after `head` to just under MAX_DASH_PLAYLIST_CHARS. */
const filled = (head: string, unit: string) =>
  head + unit.repeat(Math.floor((MAX_DASH_PLAYLIST_CHARS - head.length - 16) / unit.length));

describe("hostile playlist text: bounded in size, read in linear time", () => {
  const mib = MAX_DASH_PLAYLIST_CHARS / (1024 * 1024);
  const hostileMedia: [string, string][] = [
    ["one EXTINF line of digits", filled("#EXTM3U\n#EXTINF:", "9")],
    ["an EXT-X-MAP of unclosed quotes and commas", filled('#EXTM3U\n#EXT-X-MAP:URI="', '",",",')],
    ["segments without EXTINF", filled("#EXTM3U\n", "a\n")],
    ["tiny segments", filled('#EXTM3U\n#EXT-X-MAP:URI="i"\n', "#EXTINF:0.001,\ns\n")],
  ];
  it.each(hostileMedia)("%s: refused or bounded, in linear time", (_name, text) => {
    const { cpuMs, result } = cpuTimed(() => readMediaPlaylist(text, MAX_DASH_SEGMENTS));
    expect(cpuMs).toBeLessThan(CPU_MS_PER_MIB * mib);
    if (!("problem" in result)) expect(result.segments.length).toBeLessThanOrEqual(MAX_DASH_SEGMENTS);
  });

  it("a master of endless attribute lists reads in linear time", () => {
    const text = filled("#EXTM3U\n", '#EXT-X-MEDIA:TYPE=AUDIO,NAME="a,b,c=d,"=,,URI=",\n');
    const { cpuMs, result } = cpuTimed(() => readMaster(text));
    expect(cpuMs).toBeLessThan(CPU_MS_PER_MIB * mib);
    expect(result?.variants).toEqual([]);
  });

  it("a playlist over the limit, or more segments than one MPD may list, is refused", async () => {
    expect(readMediaPlaylist(`${"#".repeat(MAX_DASH_PLAYLIST_CHARS)}\n`, 10)).toEqual({
      problem: "a playlist is too long",
    });
    expect(readMaster("#".repeat(MAX_DASH_PLAYLIST_CHARS + 1))).toBeNull();
    const many = Array.from({ length: MAX_DASH_SEGMENTS / 2 + 1 }, (_, i) => ({ uri: `s${i}.m4s`, duration: 1 }));
    const long = mediaPlaylist(many, { targetDuration: 1, endList: true, map: "init.mp4" });
    // Each rung alone is under the bound; the ladder's together are over it.
    const outcome = await dashManifest(
      `${HLS}/master.m3u8`,
      readsOf({ ...ladderFiles(), "360p/index.m3u8": long, "144p/index.m3u8": long }),
    );
    expect(outcome).toEqual({ refused: "unlistable", problem: "too many segments for one MPD" });
  });
});
