import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { LIVE_FEED_FROM_HEADER, type LiveInput } from "../../src/protocol/live-messages.ts";
import { type EncoderStatus, type LadderEncode, presetTuning } from "./encode-ladder.ts";
import { ladderScaleGraph, videoEncoderOptions } from "./rung-encoding.ts";
import { segmentOptions } from "./segment-muxer.ts";
import { type FfmpegOutput, runFfmpeg } from "./ffmpeg-process.ts";
import { audioRungEncoderOptions, type PlannedRung, planLadder } from "./ladder.ts";
import { decodeLimitOptions, type MediaInput, mediaInputOptions } from "./media-input.ts";
import type { LiveVideoSample } from "./probe.ts";
import { segmentExtension } from "./segments.ts";

/**
 * A live encode's x264 settings: `superfast` on every rung. A broadcast must keep up with real time on
 * whatever the worker has left, and one that falls behind adds its lag to every viewer's latency;
 * veryfast (the VOD ladder's) costs about 1.4× as much CPU.
 */
const LIVE_TUNING = presetTuning("superfast");

/** What a live encode reads and writes. */
export interface LiveLadderArgs {
  /** The publisher's stream as FLV over HTTP (the API's feed, `LiveJobMessage.feedUrl`). */
  feedUrl: string;
  ladder: PlannedRung[];
  input: LiveInput;
  workDir: string;
  segmentSeconds: number;
  /** The broadcast's longest: every rung stops there (what earlier runs published counts). */
  maxDurationSeconds: number;
  /** The rung whose video is the publisher's own, copied (`passthroughRung`); the others are encoded. */
  copiedRung?: string | null;
  /** A broadcast taken over: per rung, its next segment's number and the seconds already published before it. */
  continues?: ReadonlyMap<string, { firstSegment: number; keptSeconds: number }>;
  signal: AbortSignal;
}

/**
 * Seconds without a byte from the feed after which ffmpeg gives up: longer than the API keeps a
 * broadcast open for its publisher to reconnect (LIVE_RECONNECT_GRACE_SECONDS, at most 120).
 */
const FEED_READ_TIMEOUT_SECONDS = 180;

/**
 * The ProbeResult a live ladder is planned from: the stream's metadata as the API bounded it. The
 * duration is unknown while live (0).
 */
export function liveProbe(input: LiveInput): ProbeResult {
  return {
    duration: 0,
    width: input.width,
    height: input.height,
    fps: input.fps,
    rotation: 0,
    hasAudio: input.hasAudio,
    videoCodec: "h264",
    audioCodec: input.hasAudio ? "aac" : null,
  };
}

/** The VOD ladder's rungs a live ladder is made of, at most LIVE_VIDEO_RUNGS of them, from the top. */
const LIVE_RUNG_NAMES = new Set(["2160p", "1440p", "1080p", "720p", "480p", "360p"]);
const LIVE_VIDEO_RUNGS = 3;

/**
 * A broadcast's ladder: the VOD plan's rungs (never above the input) thinned to the three highest
 * of 2160p, 1440p, 1080p, 720p, 480p and 360p (a 720p input: 720p, 480p, 360p), and the audio. Every
 * rung is encoded in real time for as long as the broadcast lasts: six rungs would cost a 720p30
 * broadcast about twice the CPU of three. An input below 360p keeps its one rung.
 */
export function planLiveLadder(input: LiveInput, segmentSeconds: number): PlannedRung[] {
  const planned = planLadder(liveProbe(input), { segmentSeconds });
  const video = planned.filter((r) => r.kind === "VIDEO");
  const kept = video.filter((r) => LIVE_RUNG_NAMES.has(r.name)).slice(0, LIVE_VIDEO_RUNGS);
  return [...(kept.length > 0 ? kept : video.slice(0, 1)), ...planned.filter((r) => r.kind === "AUDIO")];
}

/** A broadcast's feed as ffmpeg and ffprobe open it: FLV over HTTP(S) from the API. */
export function liveFeedInput(feedUrl: string): MediaInput {
  return { url: feedUrl, protocols: feedUrl.startsWith("https:") ? "https,tls,tcp" : "http,tcp", format: "flv" };
}

/** The ladder's top video rung when it is the publisher's picture size (the only one that can be copied), else null. */
export function topRungAtInputSize(ladder: PlannedRung[], input: LiveInput): PlannedRung | null {
  const top = ladder.find((r) => r.kind === "VIDEO");
  return top && top.width === input.width && top.height === input.height ? top : null;
}

/** The RFC 6381 profile part (profile_idc and constraint flags) of the H.264 profiles players take. */
const AVC_PROFILES: Record<string, string> = {
  "Constrained Baseline": "42c0",
  Baseline: "4200",
  Main: "4d40",
  High: "6400",
};

/** What MPEG-TS adds to a video stream's bit rate, and the margin on a peak measured over one group of pictures. */
const COPIED_PEAK_FACTOR = 1.1 * 1.5;

/**
 * The top rung as the publisher's own video, copied instead of encoded (its encode is about a quarter of a
 * 720p broadcast's CPU: docs/performance.md, "Live streams"), or null when players could not take it or the
 * rungs could not share its cuts: the rung's size, H.264 High at most (8-bit 4:2:0), at most twice the rung's
 * bit rate, and keyframes in `sample` (two at least) on every segment boundary. Its codecs and bandwidth are the
 * publisher's (the measured peak with margin, never under the rung's planned one).
 */
export function passthroughRung(
  ladder: PlannedRung[],
  input: LiveInput,
  sample: LiveVideoSample,
  segmentSeconds: number,
): PlannedRung | null {
  const top = topRungAtInputSize(ladder, input);
  if (!top) return null;
  const profile = sample.profile === null ? undefined : AVC_PROFILES[sample.profile];
  if (!profile || sample.pixFmt !== "yuv420p" || sample.level === null || sample.level < 9 || sample.level > 52)
    return null;
  const keyframes = sample.packets.filter((p) => p.keyframe).map((p) => p.time);
  if (keyframes.length < 2) return null;
  let peak = 0;
  for (let i = 1; i < keyframes.length; i++) {
    const interval = keyframes[i]! - keyframes[i - 1]!;
    const perSegment = segmentSeconds / interval;
    if (!(interval > 0) || interval > segmentSeconds + 0.01 || Math.abs(perSegment - Math.round(perSegment)) > 0.02)
      return null;
    const bytes = sample.packets
      .filter((p) => p.time >= keyframes[i - 1]! && p.time < keyframes[i]!)
      .reduce((sum, p) => sum + p.bytes, 0);
    peak = Math.max(peak, (bytes * 8) / interval);
  }
  const audio = ladder.find((r) => r.kind === "AUDIO")?.bandwidth ?? 0;
  const plannedVideoPeak = top.bandwidth - audio;
  if (peak > 2 * plannedVideoPeak) return null;
  return {
    ...top,
    codecs: `avc1.${profile}${sample.level.toString(16).padStart(2, "0")}`,
    bandwidth: Math.max(top.bandwidth, Math.ceil(peak * COPIED_PEAK_FACTOR) + audio),
    h264Level: sample.level,
  };
}

/**
 * Encodes a live feed into every rung in one ffmpeg process, as the VOD ladder does (one decode,
 * one scaling graph, every rung's keyframes at the same times), cutting a segment of every rung
 * every `segmentSeconds` until the feed ends. The segment lists are the VOD encode's (the publisher
 * reads them the same way); they end when ffmpeg does.
 */
export function encodeLiveLadder(args: LiveLadderArgs): LadderEncode {
  const { ladder, workDir, segmentSeconds } = args;
  const copied = ladder.find((r) => r.kind === "VIDEO" && r.name === args.copiedRung) ?? null;
  const videoRungs = ladder.filter((r) => r.kind === "VIDEO" && r !== copied);
  const audioRungs = ladder.filter((r) => r.kind === "AUDIO");
  const input = liveFeedInput(args.feedUrl);
  // A run taking a broadcast over numbers its segments on and starts its timeline where the published ones end.
  const where = (rung: PlannedRung): [number, number] => {
    const continued = args.continues?.get(rung.name);
    return continued ? [continued.firstSegment, continued.keptSeconds] : [0, 0];
  };
  const trim = continuationTrim(args.continues);
  const scaled = videoRungs.length > 0 ? ladderScaleGraph(videoRungs, LIVE_TUNING.scaling, "[0:V:0]") : "";
  const trimmed = videoRungs.map((rung, i) => trim.video(rung, i));
  const graph = [scaled, ...trimmed.map((t) => t.filter)].filter((part) => part.length > 0).join(";");
  const outputs: FfmpegOutput[] = [
    ...(copied
      ? [
          {
            target: segmentFiles(copied),
            options: [
              ...["-map", "0:v:0", "-c:v", "copy"],
              ...trim.copied(copied),
              // Copied packets keep the input's timestamps: the broadcast's media time, from 0 in a first run.
              ...["-t", String(args.maxDurationSeconds)],
              ...segmentOptions(copied, "TS", ...where(copied), { everySeconds: segmentSeconds }),
            ],
          },
        ]
      : []),
    ...videoRungs.map((rung, i) => ({
      target: segmentFiles(rung),
      options: [
        "-map",
        trimmed[i]!.label,
        ...longest(args, rung),
        // Beside a copied rung, its keyframes are the publisher's, so every rung is cut at the same frames.
        ...videoEncoderOptions(
          "libx264",
          rung,
          segmentSeconds,
          args.input.fps,
          videoRungs,
          LIVE_TUNING.x264Options,
          copied === null ? segmentSeconds : "source",
        ),
        // Frames leave the encoder as they come: no lookahead holding a second of them back.
        "-tune",
        "zerolatency",
        ...segmentOptions(rung, "TS", ...where(rung), { everySeconds: segmentSeconds }),
      ],
    })),
    ...audioRungs.map((rung) => ({
      target: segmentFiles(rung),
      options: [
        "-map",
        "0:a:0",
        ...trim.audio(rung),
        ...longest(args, rung),
        ...audioRungEncoderOptions(rung),
        ...segmentOptions(rung, "TS", ...where(rung), { everySeconds: segmentSeconds }),
      ],
    })),
  ];

  let latest: EncoderStatus | null = null;
  let startedAt: number | null = null;
  const done = Promise.all(ladder.map((r) => mkdir(path.join(workDir, r.name), { recursive: true }))).then(() =>
    runFfmpeg({
      inputs: [
        {
          source: input.url,
          options: [
            ...mediaInputOptions(input),
            ...decodeLimitOptions(),
            // Start from what the feed sends first (its metadata and codec headers come before any frame).
            // Not beside a copied rung: the packets read while probing would not reach it, and the
            // segment muxer, starting late, would miss its first cuts (a first segment of 3 s, not 1).
            // Nor in a run taking the broadcast over: the feed's replay comes at once, and the probe
            // would take its first keyframe from the decoder (its first group of pictures lost).
            ...(copied === null && !args.continues ? ["-fflags", "+nobuffer"] : []),
            "-analyzeduration",
            "200000",
            "-rw_timeout",
            String(FEED_READ_TIMEOUT_SECONDS * 1_000_000),
            // A run taking the broadcast over reads the feed from where its published media ends, with
            // the feed's timestamps as they are (the encode's media time): `continuationTrim`.
            ...trim.input,
          ],
        },
      ],
      ...(graph ? { filterGraph: graph } : {}),
      outputs,
      cwd: workDir,
      signal: args.signal,
      onStart: () => {
        startedAt = Date.now();
      },
      onStatus: (status) => {
        if (startedAt !== null) latest = { ...status, startedAt, fromSeconds: 0 };
      },
    }),
  );
  return { done: done.then(() => undefined), status: () => latest };
}

/**
 * How far below where a rung's published media ends a continuing run keeps its frames: the kept
 * segments' lengths are summed from six-decimal EXTINFs, so that end can be a hair past the frame
 * on it; a frame is never this close to the one before it.
 */
const TRIM_SLACK_SECONDS = 0.001;

/** An encoded rung's or the audio's output stops at the broadcast's longest length, less what its earlier runs published. */
function longest(args: LiveLadderArgs, rung: PlannedRung): string[] {
  const kept = args.continues?.get(rung.name)?.keptSeconds ?? 0;
  return ["-t", Math.max(1, args.maxDurationSeconds - kept).toFixed(6)];
}

/**
 * What a run taking a broadcast over drops, per rung, so that each rung's first frame is the first
 * it has not published (docs/live.md, "Nothing recorded twice"). The feed, asked from where
 * the rungs' published media ends (the least of their kept segments' lengths, `LIVE_FEED_FROM_HEADER`),
 * replays from the keyframe at or before it, timestamped on the encode's media time (`-copyts`). An
 * encoded rung or the audio is trimmed at its own kept length (its timestamps then start at 0 again,
 * as a first run's do, so its keyframes and cuts fall where they would). The copied rung cannot
 * start between keyframes and is not trimmed (an output `-ss` on it is judged by the decoded
 * pictures' times, which lag its packets: it skipped the keyframe): it starts at the feed's first
 * keyframe, which is its kept length itself when that is where the rungs' published media ends (its
 * segments end on the publisher's keyframes); its timestamps are moved back by its kept length, so
 * its cuts fall on the other rungs'. Nothing is trimmed in a first run.
 */
function continuationTrim(continues: LiveLadderArgs["continues"]) {
  const kept = (rung: PlannedRung): number | null => continues?.get(rung.name)?.keptSeconds ?? null;
  const from = (rung: PlannedRung): string | null => {
    const seconds = kept(rung);
    return seconds === null ? null : Math.max(0, seconds - TRIM_SLACK_SECONDS).toFixed(6);
  };
  const least = continues && continues.size > 0 ? Math.min(...[...continues.values()].map((c) => c.keptSeconds)) : null;
  return {
    input: least === null ? [] : ["-headers", `${LIVE_FEED_FROM_HEADER}: ${least.toFixed(6)}\r\n`, "-copyts"],
    /** The `i`th encoded rung's trim after its scaling (`[v{i}]`), if any, and the label its output maps. */
    video: (rung: PlannedRung, i: number): { filter: string; label: string } => {
      const start = from(rung);
      return start === null
        ? { filter: "", label: `[v${i}]` }
        : { filter: `[v${i}]trim=start=${start},setpts=PTS-STARTPTS[t${i}]`, label: `[t${i}]` };
    },
    audio: (rung: PlannedRung): string[] => {
      const start = from(rung);
      return start === null ? [] : ["-filter:a", `atrim=start=${start},asetpts=PTS-STARTPTS`];
    },
    copied: (rung: PlannedRung): string[] => {
      const seconds = kept(rung);
      return seconds === null ? [] : ["-output_ts_offset", (-seconds).toFixed(6)];
    },
  };
}

function segmentFiles(rung: PlannedRung): string {
  return `${rung.name}/seg_%05d.${segmentExtension("TS")}`;
}
