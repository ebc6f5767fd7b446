import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { LiveRenditionHealth } from "../../src/protocol/live-messages.ts";
import { roundedEncoderFigures } from "../../src/shared/encoder-figures.ts";
import type { JobContext } from "../handlers/types.ts";
import { log } from "../log.ts";
import type { AnimationStart, ManimProgress } from "../manim/progress-bars.ts";
import type { EncoderStatus } from "../media/encode-ladder.ts";

/**
 * A job's progress events, computed here from the raw facts handlers feed in: ffmpeg's status line
 * and the rungs' published media time (`job.progress`), Manim's progress bars, the quiz
 * renderer's position and a transcode's steps before its encode (`step.progress`). Callbacks only
 * store facts; the sampler's timer sends.
 */

type ProgressChannel = Pick<JobContext, "emit" | "progressIntervalMs">;
type TranscodeProgressBody = Extract<JobEventBody, { type: "job.progress" }>;
type StepProgressBody = Extract<JobEventBody, { type: "step.progress" }>;

export interface ProgressReport {
  /** Stops the timer and waits for the event in flight; a render's last state is sent once more. */
  stop(): Promise<void>;
}

/**
 * Sends `sample()` as an event every `ctx.progressIntervalMs` when it changed since the last one
 * sent (null: nothing to say yet). A slow transport gets fewer, fresher samples rather than a
 * queue of stale ones, and a lost sample is replaced by the next, so it never fails the job.
 * `stop({ final: true })` sends the last state once more, so the end of a render is not lost
 * between ticks.
 */
function sampleProgress(
  ctx: ProgressChannel,
  sample: () => JobEventBody | null,
  /** Events that must each be sent before the sample (a step's start and end), in order. */
  milestones: () => JobEventBody[] = () => [],
): { stop(options?: { final?: boolean }): Promise<void> } {
  let inFlight: Promise<void> | null = null;
  let lastSent = "";
  const send = async (bodies: JobEventBody[]) => {
    for (const body of bodies) {
      await ctx.emit(body).catch((err: unknown) => log.warn("progress event not sent", { err }));
    }
  };
  const tick = () => {
    if (inFlight) return;
    const bodies = milestones();
    const body = sample();
    if (body !== null) {
      const serialized = JSON.stringify(body);
      if (serialized !== lastSent || bodies.length > 0) bodies.push(body);
      lastSent = serialized;
    }
    if (bodies.length === 0) return;
    inFlight = send(bodies).finally(() => {
      inFlight = null;
    });
  };
  const timer = setInterval(tick, ctx.progressIntervalMs);
  return {
    async stop(options = {}) {
      clearInterval(timer);
      await inFlight;
      if (!options.final) return;
      tick();
      await inFlight;
    },
  };
}

/** Where an encode is on the source's timeline, and how fast it goes. */
export interface EncoderProgress {
  /** Media time encoded up to, on the whole source's timeline (a resumed run starts part-way). */
  outTimeSeconds: number | null;
  /** Frames per second ffmpeg reports. */
  fps: number | null;
  /** Media seconds encoded per wall-clock second since ffmpeg started. */
  speed: number | null;
}

export function encoderProgress(status: EncoderStatus | null, now = Date.now()): EncoderProgress {
  if (status === null) return { outTimeSeconds: null, fps: null, speed: null };
  const wallSeconds = (now - status.startedAt) / 1000;
  return {
    outTimeSeconds: status.fromSeconds + status.outTimeSeconds,
    fps: status.fps,
    speed: wallSeconds > 0 ? status.outTimeSeconds / wallSeconds : null,
  };
}

/** A rung's progress: its published media time over the source's duration, 0..1. */
export function publishedFraction(publishedSeconds: number, durationSeconds: number): number {
  return durationSeconds > 0 ? Math.min(1, Math.max(0, publishedSeconds / durationSeconds)) : 0;
}

/** What progress needs of a rung's publishing state. */
interface PublishedRung {
  name: string;
  /** Published media time / source duration, 0..1. */
  progress: number;
  segmentCount: number;
  /** Media seconds of the rung in storage: the run's own segments and any it kept. */
  publishedSeconds: number;
  /** Set when storage refused the rung's files: it publishes no more. */
  error?: string;
}

/** What a transcode's progress is computed from. */
export interface TranscodeFacts {
  /** How long the media the run encodes is: the source, or a chunk of it. */
  durationSeconds: number;
  /** Where that media starts on the source's timeline (a chunk's start); default 0. */
  fromSeconds?: number;
  /** The source's frames per second (null: none, an audio-only source). */
  sourceFps: number | null;
  encoder(): EncoderStatus | null;
  variants(): PublishedRung[];
}

/** The media seconds the slowest rung still publishing has in storage (null: no such rung). */
function slowestPublishedSeconds(variants: PublishedRung[]): number | null {
  const publishing = variants.filter((v) => v.error === undefined);
  return publishing.length === 0 ? null : Math.min(...publishing.map((v) => v.publishedSeconds));
}

/**
 * Where the run is and how fast, from what it published since `start`: the figures before ffmpeg's first
 * status line, which waits for every output's header (a storyboard's first full sheet, a poster's frame).
 * Coarser than ffmpeg's (a segment at a time) but there from the first segment on; frames per second are
 * the source frames publishing went through.
 */
function publishingProgress(
  facts: TranscodeFacts,
  variants: PublishedRung[],
  start: { at: number; seconds: number | null },
  now: number,
): EncoderProgress {
  const seconds = slowestPublishedSeconds(variants);
  const wallSeconds = (now - start.at) / 1000;
  const gained = seconds === null || start.seconds === null ? 0 : seconds - start.seconds;
  if (seconds === null || gained <= 0 || wallSeconds <= 0) return { outTimeSeconds: null, fps: null, speed: null };
  const speed = gained / wallSeconds;
  return {
    outTimeSeconds: (facts.fromSeconds ?? 0) + seconds,
    fps: facts.sourceFps ? speed * facts.sourceFps : null,
    speed,
  };
}

/**
 * A transcode's `job.progress`: overall progress is the encoder's position in the media the run
 * encodes, ETA from its speed; before ffmpeg's first status line, both come from what the run
 * published (`publishingProgress`), and overall progress from the slowest rung's publishing
 * until a first segment is out.
 */
export function transcodeProgress(
  facts: TranscodeFacts,
  start: { at: number; seconds: number | null },
  now = Date.now(),
): TranscodeProgressBody {
  const published = facts.variants();
  const fromEncoder = encoderProgress(facts.encoder(), now);
  const stats = fromEncoder.outTimeSeconds === null ? publishingProgress(facts, published, start, now) : fromEncoder;
  const duration = facts.durationSeconds;
  const from = facts.fromSeconds ?? 0;
  const variants = published.map((v) => ({
    name: v.name,
    progress: round(v.progress, 3),
    segmentCount: v.segmentCount,
  }));
  const encoded = stats.outTimeSeconds === null ? null : stats.outTimeSeconds - from;
  const fraction = encoded !== null ? encoded / duration : Math.min(...variants.map((v) => v.progress));
  const eta = encoded !== null && stats.speed ? Math.max(0, (duration - encoded) / stats.speed) : null;
  return {
    type: "job.progress",
    progress: round(Math.min(1, Math.max(0, fraction)), 3),
    ...roundedEncoderFigures({ fps: stats.fps, speed: stats.speed, etaSeconds: eta }),
    variants,
  };
}

/**
 * Sends `job.progress` on the progress timer when a figure changed. Call it as the encode starts:
 * what the rungs hold then (a resumed run's kept segments) is where its publishing speed counts from.
 */
export function reportTranscodeProgress(ctx: ProgressChannel, facts: TranscodeFacts): ProgressReport {
  const start = { at: Date.now(), seconds: slowestPublishedSeconds(facts.variants()) };
  const sampler = sampleProgress(ctx, () => transcodeProgress(facts, start));
  return { stop: () => sampler.stop() };
}

/** What a live encode's health is computed from: ffmpeg's status and the top rung's published segments. */
export interface LiveFacts {
  encoder: () => EncoderStatus | null;
  /** Segments of the top rung published, and the media seconds they hold. */
  published: () => { segments: number; seconds: number };
  /** Each rendition: its segments, its newest segments' bit rate, whether it is copied. */
  renditions: () => LiveRenditionHealth[];
}

/**
 * Sends `live.progress` on the progress timer: media seconds encoded, fps, speed over the encode so
 * far, the top rung's segments, each rendition's, and how far the newest published segment's end is behind the wall
 * clock's time since the encode started (a broadcast that falls behind shows it growing).
 */
export function reportLiveProgress(ctx: ProgressChannel, facts: LiveFacts): ProgressReport {
  const sampler = sampleProgress(ctx, () => {
    const status = facts.encoder();
    if (status === null) return null;
    const { outTimeSeconds, fps, speed } = encoderProgress(status);
    const { segments, seconds } = facts.published();
    const wallSeconds = (Date.now() - status.startedAt) / 1000;
    return {
      type: "live.progress",
      mediaSeconds: outTimeSeconds ?? 0,
      fps,
      speed,
      segments,
      behindSeconds: segments > 0 ? Math.max(0, wallSeconds - seconds) : null,
      publishedSeconds: seconds,
      renditions: facts.renditions(),
    };
  });
  return { stop: () => sampler.stop() };
}

/**
 * Sends Manim's progress bars as `step.progress`, one step per animation: every animation's start
 * (percent 0) and end (100), however fast it was, then the bar as it stands at each sample.
 */
export function reportManimProgress(
  ctx: ProgressChannel,
  bars: { snapshot(): ManimProgress; takeStarts(): AnimationStart[] },
  animationCount: number | null,
): ProgressReport {
  // The animation whose start was sent last: its end is sent when the next one starts.
  let current: AnimationStart | null = null;
  const step = (p: ManimProgress, index: number, percent: number, description: string | null): StepProgressBody => ({
    type: "step.progress",
    index,
    count: animationCount,
    percent,
    description,
    renderedCount: p.renderedCount,
    cachedCount: p.cachedCount,
  });
  const sampler = sampleProgress(
    ctx,
    (): StepProgressBody | null => {
      const p = bars.snapshot();
      if (p.animationIndex === null) return null;
      return step(p, p.animationIndex, p.percent, p.description);
    },
    () => {
      const p = bars.snapshot();
      const bodies: StepProgressBody[] = [];
      for (const next of bars.takeStarts()) {
        if (current !== null) bodies.push(step(p, current.index, 100, current.description));
        bodies.push(step(p, next.index, 0, next.description));
        current = next;
      }
      return bodies;
    },
  );
  return { stop: () => sampler.stop({ final: true }) };
}

export interface StepProgressReport extends ProgressReport {
  /** The step is `fraction` done. Only stores the figure. */
  update(fraction: number): void;
}

/**
 * A transcode's step before its encode (measuring loudness) as `step.progress`: one step whose
 * share of the job is not counted (`count` null), so the job's progress stays the encode's.
 */
export function reportStepProgress(ctx: ProgressChannel, description: string): StepProgressReport {
  let fraction = 0;
  const sampler = sampleProgress(
    ctx,
    (): StepProgressBody => ({
      type: "step.progress",
      index: 0,
      count: null,
      percent: Math.min(100, Math.round(fraction * 1000) / 10),
      description,
      renderedCount: 0,
      cachedCount: 0,
    }),
  );
  return {
    update(value) {
      fraction = Math.max(fraction, value);
    },
    stop: () => sampler.stop({ final: true }),
  };
}

export interface QuizProgressReport extends ProgressReport {
  /** The renderer's callback: question `index` is `fraction` done. Only stores the figures. */
  update(index: number, fraction: number): void;
  /** Once the video is stored: every question is done. */
  finished(): Promise<void>;
}

/** Sends a quiz render's position as `step.progress`, one step per question. */
export function reportQuizProgress(
  ctx: ProgressChannel,
  questions: readonly { question: string }[],
): QuizProgressReport {
  const count = questions.length;
  let latest = { index: 0, fraction: 0 };
  const sampler = sampleProgress(
    ctx,
    (): StepProgressBody => ({
      type: "step.progress",
      index: latest.index,
      count,
      percent: Math.min(100, Math.round(latest.fraction * 1000) / 10),
      description: `Question ${latest.index + 1}: ${questions[latest.index]!.question.slice(0, 80)}`,
      renderedCount: latest.index,
      cachedCount: 0,
    }),
  );
  return {
    update(index, fraction) {
      latest = { index: Math.min(index, count - 1), fraction };
    },
    stop: () => sampler.stop({ final: true }),
    finished: () =>
      ctx.emit({
        type: "step.progress",
        index: count - 1,
        count,
        percent: 100,
        description: null,
        renderedCount: count,
        cachedCount: 0,
      }),
  };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
