import { describe, expect, it } from "vitest";
import { Rung, type ProbeResult } from "../../src/protocol/media-facts.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { probeResultFrom } from "../../render-worker/media/probe.ts";

function source(width: number, height: number, extra: Partial<ProbeResult> = {}): ProbeResult {
  return {
    duration: 10,
    width,
    height,
    fps: 30,
    rotation: 0,
    hasAudio: true,
    videoCodec: "h264",
    audioCodec: "aac",
    ...extra,
  };
}

/** The rules every ladder keeps, whatever the source. */
function expectSoundLadder(source: ProbeResult, ladder: Rung[]): void {
  const probe = source as ProbeResult & { width: number; height: number };
  for (const rung of ladder) expect(() => Rung.parse(rung)).not.toThrow();
  expect(new Set(ladder.map((r) => r.name)).size).toBe(ladder.length);
  const video = ladder.filter((r) => r.kind === "VIDEO");
  expect(video.length).toBeGreaterThan(0);
  const sourceAspect = probe.width / probe.height;
  for (const rung of video) {
    const { width, height } = rung as { width: number; height: number };
    expect(width % 2, `${rung.name} width`).toBe(0);
    expect(height % 2, `${rung.name} height`).toBe(0);
    expect(width).toBeLessThanOrEqual(probe.width);
    expect(height).toBeLessThanOrEqual(probe.height);
    // The long side is within 2 px of the exact aspect ratio for the rung's short side.
    if (width >= height) expect(Math.abs(width - height * sourceAspect)).toBeLessThanOrEqual(2);
    else expect(Math.abs(height - width / sourceAspect)).toBeLessThanOrEqual(2);
    expect(rung.name).toBe(`${Math.min(width, height)}p`);
    expect(rung.codecs).toMatch(/^avc1\.6400[0-9a-f]{2}$/);
  }
  const shortSides = video.map((r) => Math.min(r.width!, r.height!));
  expect(shortSides).toEqual([...shortSides].sort((a, b) => b - a));
  const audio = ladder.filter((r) => r.kind === "AUDIO");
  expect(audio.length).toBe(probe.hasAudio ? 1 : 0);
  if (probe.hasAudio) expect(ladder.at(-1)?.kind).toBe("AUDIO");
}

const sizes = (ladder: Rung[]) => ladder.map((r) => (r.kind === "VIDEO" ? `${r.name} ${r.width}x${r.height}` : r.name));

describe("planLadder", () => {
  it("plans every profile up to a 1080p source, plus demuxed audio", () => {
    const probe = source(1920, 1080);
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder)).toEqual([
      "1080p 1920x1080",
      "720p 1280x720",
      "540p 960x540",
      "480p 854x480",
      "360p 640x360",
      "240p 426x240",
      "144p 256x144",
      "audio",
    ]);
    expect(ladder.at(-1)).toEqual({
      name: "audio",
      kind: "AUDIO",
      width: null,
      height: null,
      bandwidth: expect.any(Number),
      codecs: "mp4a.40.2",
    });
    expect(ladder.find((r) => r.name === "1080p")?.codecs).toBe("avc1.640028");
  });

  it("counts the audio group in each video rung's bandwidth", () => {
    const withAudio = planLadder(source(1920, 1080));
    const withoutAudio = planLadder(source(1920, 1080, { hasAudio: false, audioCodec: null }));
    expectSoundLadder(source(1920, 1080, { hasAudio: false }), withoutAudio);
    expect(withoutAudio.map((r) => r.name)).not.toContain("audio");
    const top = (l: Rung[]) => l.find((r) => r.name === "1080p")!.bandwidth;
    expect(top(withAudio) - top(withoutAudio)).toBeGreaterThanOrEqual(128_000);
    expect(top(withoutAudio)).toBeGreaterThanOrEqual(5_000_000);
  });

  it("tops a 4K source at 2160p with a level 5.1 codecs string", () => {
    const probe = source(3840, 2160);
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder)[0]).toBe("2160p 3840x2160");
    expect(ladder[0]!.codecs).toBe("avc1.640033");
    expect(ladder.filter((r) => r.kind === "VIDEO")).toHaveLength(9);
  });

  it("applies profiles to the short side of a portrait source", () => {
    const probe = source(1080, 1920);
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder).slice(0, 3)).toEqual(["1080p 1080x1920", "720p 720x1280", "540p 540x960"]);
  });

  it("plans a phone video stored 1920x1080 with a 90° display matrix as portrait", () => {
    const probe = probeResultFrom({
      format: { format_name: "mov,mp4,m4a,3gp,3g2,mj2", duration: "4.0" },
      streams: [
        {
          index: 0,
          codec_type: "video",
          codec_name: "h264",
          width: 1920,
          height: 1080,
          avg_frame_rate: "30/1",
          side_data_list: [{ side_data_type: "Display Matrix", rotation: -90 }],
        },
      ],
    });
    expect(probe).toMatchObject({ width: 1080, height: 1920, rotation: 90, hasAudio: false });
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder)[0]).toBe("1080p 1080x1920");
  });

  it("keeps odd-sized sources even and never above the source", () => {
    const probe = source(853, 479);
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder)).toEqual(["478p 852x478", "360p 642x360", "240p 428x240", "144p 256x144", "audio"]);
  });

  it("puts a source between profiles at the top at its own size", () => {
    const probe = source(1778, 1000);
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder).slice(0, 2)).toEqual(["1000p 1778x1000", "720p 1280x720"]);
    const bitrateOrder = ladder.filter((r) => r.kind === "VIDEO").map((r) => r.bandwidth);
    expect(bitrateOrder).toEqual([...bitrateOrder].sort((a, b) => b - a));
  });

  it("does not add a profile rung nearly the size of the source", () => {
    const ladder = planLadder(source(1920, 1088));
    expect(sizes(ladder).slice(0, 2)).toEqual(["1088p 1920x1088", "720p 1270x720"]);
  });

  it("honours maxHeight as a short-side limit", () => {
    expect(sizes(planLadder(source(1920, 1080), { maxHeight: 720 }))[0]).toBe("720p 1280x720");
    expect(sizes(planLadder(source(1080, 1920), { maxHeight: 480 }))[0]).toBe("480p 480x854");
    expect(sizes(planLadder(source(3840, 2160), { maxHeight: 1000 }))[0]).toBe("1000p 1778x1000");
  });

  it("gives a source smaller than 144p one rung at its own size", () => {
    const probe = source(100, 60, { hasAudio: false, audioCodec: null });
    const ladder = planLadder(probe);
    expectSoundLadder(probe, ladder);
    expect(sizes(ladder)).toEqual(["60p 100x60"]);
    expect(sizes(planLadder(source(101, 59, { hasAudio: false })))).toEqual(["58p 100x58"]);
  });
});
