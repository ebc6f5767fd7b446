import { execFile } from "node:child_process";
import { mediaToolPath } from "../../src/shared/media-tools.ts";
import { mediaToolEnv } from "./tool-environment.ts";
import { diesWithWorker } from "./tool-process.ts";

const FFPROBE = mediaToolPath("ffprobe");
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
  }[];
}

interface FfprobePackets {
  streams?: {
    index: number;
    codec_type?: string;
    codec_name?: string;
    profile?: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    sample_rate?: string;
    channels?: number;
  }[];
  packets?: { stream_index: number; pts_time?: string; duration_time?: string }[];
}

/** ffprobe's streams and packets of a local segment file (MPEG-TS, or fMP4 with its init first). */
function probePackets(file: string, format: "mpegts" | "mov", signal?: AbortSignal): Promise<FfprobePackets> {
  const args = [
    "-v",
    "error",
    "-protocol_whitelist",
    "file",
    "-f",
    format,
    "-of",
    "json",
    "-show_entries",
    "stream=index,codec_type,codec_name,profile,width,height,pix_fmt,sample_rate,channels:packet=stream_index,pts_time,duration_time",
    `file:${file}`,
  ];
  const ffprobe = diesWithWorker(FFPROBE, args);
  const options = {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30_000,
    killSignal: "SIGKILL" as const,
    signal,
    env: mediaToolEnv(),
  };
  return new Promise((resolve, reject) => {
    execFile(ffprobe.file, ffprobe.args, options, (error, stdout) => {
      if (error) return reject(error);
      try {
        resolve(JSON.parse(stdout) as FfprobePackets);
      } catch (err) {
        reject(err);
      }
    });
  });
}

function shapeOf(data: FfprobePackets): SegmentShape {
  return {
    streams: (data.streams ?? []).map((s) => {
      const packets = (data.packets ?? []).filter((p) => p.stream_index === s.index && p.pts_time !== undefined);
      const starts = packets.map((p) => Number(p.pts_time));
      const ends = packets.map((p) => Number(p.pts_time) + Number(p.duration_time ?? 0));
      return {
        kind: s.codec_type ?? "",
        codec: s.codec_name ?? "",
        profile: s.profile,
        size: `${s.width ?? ""}x${s.height ?? ""} ${s.pix_fmt ?? ""}`,
        rate: `${s.sample_rate ?? ""} ${s.channels ?? ""}`,
        packets: packets.length,
        start: starts.length > 0 ? Math.min(...starts) : Number.NaN,
        end: ends.length > 0 ? Math.max(...ends) : Number.NaN,
      };
    }),
  };
}

/**
 * True when two segment files are encodes of the same cut of the same rung: the same streams with
 * the same codec, profile, frame size and audio format, as many packets, starting and ending at the
 * same media times. Two runs of one job encode a segment from the same frames between the same cuts
 * with the same settings, but x264's threading makes their bytes differ; either one plays in the
 * other's place, as a resumed run's segments play after an earlier run's. Bytes that are not such a
 * segment (another job's ladder, a foreign file) are not.
 */
export async function sameSegmentCut(
  ours: string,
  theirs: string,
  format: "mpegts" | "mov",
  signal?: AbortSignal,
): Promise<boolean> {
  let shapes: [SegmentShape, SegmentShape];
  try {
    const [a, b] = await Promise.all([probePackets(ours, format, signal), probePackets(theirs, format, signal)]);
    shapes = [shapeOf(a), shapeOf(b)];
  } catch {
    // Bytes ffprobe cannot read as a segment are not an equivalent of ours.
    return false;
  }
  const [a, b] = shapes;
  if (a.streams.length === 0 || a.streams.length !== b.streams.length) return false;
  return a.streams.every((s, i) => {
    const t = b.streams[i]!;
    return (
      s.kind === t.kind &&
      s.codec === t.codec &&
      s.profile === t.profile &&
      s.size === t.size &&
      s.rate === t.rate &&
      s.packets === t.packets &&
      Math.abs(s.start - t.start) <= SAME_TIME_SECONDS &&
      Math.abs(s.end - t.end) <= SAME_TIME_SECONDS
    );
  });
}
