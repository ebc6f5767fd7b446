import type { ChunkRange } from "../../src/protocol/media-facts.ts";
import type { EncodeLadderArgs } from "./encode-ladder.ts";
import { segmentCount, segmentStart, type SegmentPlan } from "./segments.ts";

/**
 * A time chunk of a chunked encode: segments `fromSegment` to `toSegment - 1` of every video rung,
 * encoded by one run (`encodeLadder` with `chunkRange(chunk)`) as one process encoding the whole
 * source writes them: the same frames, cuts, timestamps and numbering. The audio is no chunk's: it
 * is encoded once, over the whole source, by a run with the audio rungs alone.
 *
 * Exactly so for a constant frame rate, whether or not a frame starts where the chunk (or its
 * pre-roll) does: 25 fps and 30000/1001 fps (test/worker/chunks.test.ts; encode-ladder.ts's
 * VideoStart says how). A variable-rate source is not: its frames are re-timed onto a grid at
 * the average rate, which moves some across a cut. On makeVfrClip's 60/10 fps pattern a join at
 * 5 s showed a frame twice and a resume there lost one, its timestamps 4–25 ms off the one-process
 * encode's (2026-11-23, as before the 30000/1001 fix).
 */
export type Chunk = ChunkRange;

export interface ChunkOptions {
  /**
   * How long a chunk after the first is, about (rounded to whole segments). 60 s: every chunk pays
   * a process start, a seek that decodes from the source's keyframe before the chunk (up to 10 s
   * of frames from x264's defaults) and a 2 s pre-roll, which a minute keeps to a few percent of
   * its work; and at 0.8–4× realtime on 4–16 cores (FACTS.md, 2026-11-23) a minute of 1080p is
   * 15–75 s of work, short enough that a 10-minute source spreads over ten workers.
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
 * Splits a source of `durationSeconds` into chunks that cover every segment of `plan` once, in
 * order, cut only where a segment starts: a short first chunk, then the rest in as few chunks of at
 * most `chunkSeconds` (to the nearest segment) as it takes, as equal as whole segments allow.
 * Equal, not full chunks and a remainder: the video is READY when its last chunk is, so the last
 * must not be one and a half chunks long (98 s in 60 s chunks was 9 + 89 s, one worker encoding
 * 89 s while the others waited; it is now 9 + 44 + 45 s). With `slots`, the last round of runs is
 * filled (above). A source no longer than `singleChunkSeconds` (default: `chunkSeconds`) is one
 * chunk.
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
 * How long a chunk's run encodes before the chunk and drops (encodeLadder's `preRollSeconds`).
 * x264's one-pass rate control starts a run cautiously: without a pre-roll the first segment of a
 * chunk got 5–20 % fewer bits than in a one-process encode, and 3 joins in 12 s cost the 144p rung
 * 0.77 dB PSNR (240p 0.24, 360p 0.07). After 2 s of the frames before it, the joined rungs scored
 * within 0.025 dB and 0.0005 SSIM of the one-process encode (0.5 s: 0.22 dB; 4 s: no better than
 * 2 s); the same one-process encode varies by 0.06–0.16 dB with x264's thread count alone
 * (test/worker/chunks.test.ts's clip, 640x360 25 fps, 2026-11-23). 2 s also stays below x264's
 * 250-frame keyframe interval up to 125 fps, which the pre-roll's dropping relies on.
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
