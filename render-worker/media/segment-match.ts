import type { FfprobeJson } from "./probe.ts";
import { ownMediaFile } from "./media-input.ts";
import { probePackets } from "./probe.ts";

/** Timestamps within this many seconds are the same (the 90 kHz clock of MPEG-TS, rounded). */
const SAME_TIME_SECONDS = 0.001;

/** What a segment holds, as far as a player's timeline is concerned: its streams and their spans. */
interface SegmentShape {
  streams: {
    kind: string;
    codec: string;
    profile: string | undefined;
    size: string;
    rate: string;
    packets: number;
    start: number;
    end: number;
    /** The longest packet, in seconds: an audio frame (1024 samples of AAC). */
    longestPacket: number;
  }[];
}

function shapeOf(data: FfprobeJson): SegmentShape {
  return {
    streams: (data.streams ?? []).map((s) => {
      const [num, den] = (s.time_base ?? "").split("/").map(Number);
      const seconds = (ticks: number) => (num && den ? (ticks * num) / den : Number.NaN);
      const packets = (data.packets ?? []).filter((p) => p.stream_index === s.index && p.pts !== undefined);
      const starts = packets.map((p) => seconds(p.pts!));
      const ends = packets.map((p) => seconds(p.pts! + (p.duration ?? 0)));
      return {
        kind: s.codec_type ?? "",
        codec: s.codec_name ?? "",
        profile: s.profile,
        size: `${s.width ?? ""}x${s.height ?? ""} ${s.pix_fmt ?? ""}`,
        rate: `${s.sample_rate ?? ""} ${s.channels ?? ""}`,
        packets: packets.length,
        start: starts.length > 0 ? Math.min(...starts) : Number.NaN,
        end: ends.length > 0 ? Math.max(...ends) : Number.NaN,
        longestPacket: Math.max(0, ...packets.map((p) => seconds(p.duration ?? 0))),
      };
    }),
  };
}

/**
 * True when two segment files are encodes of the same cut of the same rung (same streams and formats, as many
 * packets, the same start and end times): x264's threading makes two runs' bytes differ, yet either plays in
 * the other's place. Audio frames do not start on cuts, so a resumed run's audio may differ by one frame at
 * either end and in number: the join resume.test.ts allows, so it counts as the same cut.
 */
export async function sameSegmentCut(
  ours: string,
  theirs: string,
  format: "mpegts" | "mov",
  signal?: AbortSignal,
): Promise<boolean> {
  let shapes: [SegmentShape, SegmentShape];
  try {
    const probe = (file: string) => probePackets(ownMediaFile(file, format), { signal });
    const [a, b] = await Promise.all([probe(ours), probe(theirs)]);
    shapes = [shapeOf(a), shapeOf(b)];
  } catch {
    // Bytes ffprobe cannot read as a segment are not an equivalent of ours.
    return false;
  }
  const [a, b] = shapes;
  if (a.streams.length === 0 || a.streams.length !== b.streams.length) return false;
  return a.streams.every((s, i) => {
    const t = b.streams[i]!;
    const audio = s.kind === "audio";
    const frames = audio ? 1 : 0;
    const slack = SAME_TIME_SECONDS + (audio ? Math.max(s.longestPacket, t.longestPacket) : 0);
    return (
      s.kind === t.kind &&
      s.codec === t.codec &&
      s.profile === t.profile &&
      s.size === t.size &&
      s.rate === t.rate &&
      Math.abs(s.packets - t.packets) <= frames &&
      Math.abs(s.start - t.start) <= slack &&
      Math.abs(s.end - t.end) <= slack
    );
  });
}
