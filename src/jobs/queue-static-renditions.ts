import type { Db } from "../db/client.ts";
import type { Job, StaticRenditionName, Variant } from "../generated/prisma/client.ts";
import type { StaticRenditionPlan } from "../protocol/static-rendition-messages.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import { createJob } from "./create-job.ts";

type Tx = Pick<Db, "job" | "video" | "variant" | "staticRendition">;

/** LOW is the lowest video rung whose short side is at least this (else the highest rung there is). */
const LOW_MIN_SHORT_SIDE = 270;

const shortSide = (v: Pick<Variant, "width" | "height">) => Math.min(v.width ?? 0, v.height ?? 0);

/**
 * The rungs a rendition is made from, chosen among a video's READY variants, or why it cannot be
 * made: HIGHEST the largest video rung, LOW the lowest at least 270 on its short side, each with
 * the audio rung when there is one; AUDIO the audio rung alone.
 */
function planStaticRendition(
  name: StaticRenditionName,
  variants: Pick<Variant, "name" | "kind" | "status" | "width" | "height">[],
): StaticRenditionPlan | { skipped: string } {
  const ready = variants.filter((v) => v.status === "READY");
  const audioRung = ready.find((v) => v.kind === "AUDIO")?.name ?? null;
  if (name === "AUDIO") return audioRung ? { name, videoRung: null, audioRung } : { skipped: "The video has no audio" };
  const video = ready.filter((v) => v.kind === "VIDEO" && shortSide(v) > 0).sort((a, b) => shortSide(b) - shortSide(a));
  const highest = video[0];
  if (!highest) return { skipped: "The video has no video rung" };
  const rung =
    name === "HIGHEST" ? highest : (video.filter((v) => shortSide(v) >= LOW_MIN_SHORT_SIDE).at(-1) ?? highest);
  return { name, videoRung: rung.name, audioRung };
}

/**
 * Asks for static renditions of a video; the caller holds the video's lock (lockVideo). A name
 * not asked for before, or one that FAILED, becomes PREPARING; one PREPARING, READY or SKIPPED
 * stays as it is, so asking again changes nothing. Then `queueStaticRenditions`.
 */
export async function requestStaticRenditions(
  tx: Pick<Db, "staticRendition">,
  videoId: string,
  names: readonly StaticRenditionName[],
): Promise<void> {
  for (const name of new Set(names)) {
    await tx.staticRendition.upsert({
      where: { videoId_name: { videoId, name } },
      create: { videoId, name },
      update: {},
    });
    await tx.staticRendition.updateMany({
      where: { videoId, name, status: "FAILED" },
      data: { status: "PREPARING", jobId: null, error: null },
    });
  }
}

/**
 * Queues the one job that makes a READY video's PREPARING renditions that have none yet (the
 * caller holds the video's lock and announces the job once the transaction commits). A rendition
 * with nothing to be made from is SKIPPED. Null when there is nothing to queue: the video is not
 * READY (its transcode's success calls this again) or every rendition has its job.
 */
export async function queueStaticRenditions(
  tx: Tx,
  videoId: string,
  options: { maxAttempts: number; costs: CostSettings },
): Promise<Job | null> {
  const video = await tx.video.findUnique({ where: { id: videoId }, select: { status: true } });
  if (video?.status !== "READY") return null;
  const waiting = await tx.staticRendition.findMany({ where: { videoId, status: "PREPARING", jobId: null } });
  if (waiting.length === 0) return null;
  const variants = await tx.variant.findMany({ where: { videoId } });
  const planned: { id: string; plan: StaticRenditionPlan }[] = [];
  for (const rendition of waiting) {
    const plan = planStaticRendition(rendition.name, variants);
    if ("skipped" in plan) {
      await tx.staticRendition.update({
        where: { id: rendition.id },
        data: { status: "SKIPPED", error: plan.skipped },
      });
    } else {
      planned.push({ id: rendition.id, plan });
    }
  }
  if (planned.length === 0) return null;
  const job = await createJob(
    tx,
    {
      videoId,
      kind: "STATIC_RENDITIONS",
      input: { renditions: planned.map((p) => p.plan) },
      maxAttempts: options.maxAttempts,
    },
    options.costs,
  );
  const byName = new Map(variants.map((v) => [v.name, v]));
  for (const { id, plan } of planned) {
    const rung = plan.videoRung === null ? undefined : byName.get(plan.videoRung);
    await tx.staticRendition.update({
      where: { id },
      data: {
        jobId: job.id,
        videoRung: plan.videoRung,
        audioRung: plan.audioRung,
        width: rung?.width ?? null,
        height: rung?.height ?? null,
      },
    });
  }
  return job;
}

/** The renditions a job was making and did not finish: FAILED with `error` (the video stands). */
export async function failStaticRenditions(
  tx: Pick<Db, "staticRendition">,
  jobId: string,
  error: string,
): Promise<void> {
  await tx.staticRendition.updateMany({ where: { jobId, status: "PREPARING" }, data: { status: "FAILED", error } });
}
