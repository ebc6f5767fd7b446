import type { ChunkRange } from "../../src/protocol/media-facts.ts";
import { type EncodeLadderArgs, encodeLadder, type LadderEncode } from "./encode-ladder.ts";
import { segmentCount, segmentStart, type SegmentPlan } from "./segments.ts";

/**
 * A time chunk of a chunked encode: segments `fromSegment` to `toSegment - 1` of every video rung, written
 * exactly as one whole-source process would for a constant frame rate; the audio is encoded once, apart.
 * A variable-rate source's joins can be off by a frame (docs/chunked-transcoding.md, "Known problems").
 */
export type Chunk = ChunkRange;

export interface ChunkOptions {
  /**
   * How long a chunk after the first is, about (rounded to whole segments). 60 s keeps each chunk's start,
   * seek and pre-roll to a few percent of its work, and is short enough that a 10-minute source spreads over
   * ten workers (docs/performance.md, "One video on a fleet").
   */
  chunkSeconds?: number;
  /**
   * How long the first chunk is, about (at most `chunkSeconds`): it ends at the segment start
   * nearest this, after the short first segment and at least one full one. It is scheduled first
   * and makes the video playable, so it is short: a few segments (9 s of the worker's default 1 s
   * first segment and 4 s ones).
   */
  firstChunkSeconds?: number;
  /** A source no longer than this is one chunk: splitting it would cost more than it saves. */
  singleChunkSeconds?: number;
  /**
   * How many chunks run at once (the cpu workers' slots when the API allowed the split). With more
   * chunks than one round of runs takes, the last round is filled: 10 chunks on 8 slots would run
   * 8, then 2 with 6 slots idle, and READY waits for a whole second chunk's length; 15 shorter ones
   * (the first chunk's run counts in the first round) keep every slot busy to the end. One round
   * already runs everything at once, and is left as it is.
   */
  slots?: number;
}

const DEFAULT_CHUNK_SECONDS = 60;
const DEFAULT_FIRST_CHUNK_SECONDS = 10;

/**
 * Splits a source into chunks cut only where a segment starts: a short first chunk, then chunks of at most
 * `chunkSeconds`, as equal as whole segments allow, since the video is READY only when its last chunk is.
 * With `slots` the last round of runs is filled; a source up to `singleChunkSeconds` is one chunk.
 */
export function planChunks(plan: SegmentPlan, durationSeconds: number, options: ChunkOptions = {}): Chunk[] {
  const chunkSeconds = options.chunkSeconds ?? DEFAULT_CHUNK_SECONDS;
  const firstChunkSeconds = options.firstChunkSeconds ?? DEFAULT_FIRST_CHUNK_SECONDS;
  const singleChunkSeconds = options.singleChunkSeconds ?? chunkSeconds;
  if (!(chunkSeconds > 0) || !(firstChunkSeconds > 0) || !(singleChunkSeconds >= 0))
    throw new Error("Chunk lengths must be positive");
  const total = segmentCount(plan, durationSeconds);
  if (durationSeconds <= singleChunkSeconds) return chunksStartingAt(plan, durationSeconds, [0]);

  // Every segment after the first is full length (the source's last may be shorter), so a chunk
  // is a whole number of them.
  const firstSeconds = Math.min(firstChunkSeconds, chunkSeconds);
  const firstFull = Math.max(1, Math.round((firstSeconds - plan.firstSegmentSeconds) / plan.segmentSeconds));
  const firstEnd = Math.min(total, 1 + firstFull);
  const starts = [0];
  const rest = total - firstEnd;
  if (rest === 0) return chunksStartingAt(plan, durationSeconds, starts);
  // As many chunks as chunks of `chunkSeconds` (to the nearest segment) would take, no more: each
  // one more pays a process start, a seek and a pre-roll.
  const perChunk = Math.max(1, Math.round(chunkSeconds / plan.segmentSeconds));
  let count = Math.ceil(rest / perChunk);
  const slots = options.slots ?? 1;
  // Only with a second round (count ≥ slots): fewer than twice as many, each over half as long.
  if (slots >= 2 && 1 + count > slots) count = Math.min(rest, Math.ceil((1 + count) / slots) * slots - 1);
  const base = Math.floor(rest / count);
  // The source's last segment is most often shorter than a full one: the last chunks take the
  // segments left over, so that the chunks' lengths in seconds come out closer.
  const shorter = count - (rest % count);
  for (let i = 0, from = firstEnd; i < count; i++) {
    starts.push(from);
    from += base + (i < shorter ? 0 : 1);
  }
  return chunksStartingAt(plan, durationSeconds, starts);
}

/**
 * The chunks of `plan` over a source of `durationSeconds` that start at the segments `starts` (the
 * first 0, in order), each running to the next one's start and the last to the source's end.
 */
export function chunksStartingAt(plan: SegmentPlan, durationSeconds: number, starts: number[]): Chunk[] {
  const total = segmentCount(plan, durationSeconds);
  return starts.map((fromSegment, index) => {
    const toSegment = starts[index + 1] ?? total;
    return {
      index,
      fromSegment,
      toSegment,
      fromSeconds: segmentStart(plan, fromSegment),
      toSeconds: toSegment === total ? durationSeconds : segmentStart(plan, toSegment),
    };
  });
}

/**
 * Seconds a chunk's run encodes before the chunk and drops, so x264's rate control is warm at the join
 * (its PSNR with and without: docs/chunked-transcoding.md, "Built and tested").
 * Below x264's 250-frame keyframe interval up to 125 fps, which the dropping relies on.
 */
const CHUNK_PRE_ROLL_SECONDS = 2;

/** The encodeLadder options that make a run encode `chunk` (with the video rungs only). */
export function chunkRange(chunk: Chunk): Required<Pick<EncodeLadderArgs, "resumeFrom" | "stopAt" | "preRollSeconds">> {
  return {
    resumeFrom: { segments: chunk.fromSegment },
    stopAt: { segments: chunk.toSegment },
    preRollSeconds: CHUNK_PRE_ROLL_SECONDS,
  };
}

/**
 * A split run's encode: the first chunk of the video rungs and the whole of the audio rungs, in two
 * ffmpeg processes at once (a run that stops before the source's end encodes video only). Its
 * status is the video's. The first failure stops the other process and is the encode's.
 */
export function encodeFirstChunk(
  args: EncodeLadderArgs,
  first: Chunk,
  stopAll: (error: unknown) => void,
): LadderEncode {
  const audioRungs = args.ladder.filter((r) => r.kind === "AUDIO");
  const video = encodeLadder({
    ...args,
    ladder: args.ladder.filter((r) => r.kind === "VIDEO"),
    stopAt: { segments: first.toSegment },
  });
  const audioFilter = args.sourceFilters?.audio;
  // The video's run makes the poster.
  const { sourceFilters: _, poster: __, ...audioArgs } = args;
  const audio =
    audioRungs.length === 0
      ? null
      : encodeLadder({
          ...audioArgs,
          ladder: audioRungs,
          ...(audioFilter ? { sourceFilters: { inputs: [], audio: audioFilter } } : {}),
          // The first segments of the video are on the way to playable; the audio's cost little.
          niceness: 10,
        });
  let failure: { error: unknown } | null = null;
  const stopOnFailure = (done: Promise<void>) =>
    done.catch((error: unknown) => {
      failure ??= { error };
      stopAll(error);
    });
  // Settles once both processes have exited, whatever either did.
  const done = Promise.all([stopOnFailure(video.done), stopOnFailure(audio?.done ?? Promise.resolve())]).then(() => {
    if (failure) throw failure.error;
  });
  return { done, status: video.status };
}
