import type { ContentKeys } from "../../content-protection/content-keys.ts";
import type { Db } from "../../db/client.ts";
import type { Capability } from "../../protocol/worker-messages.ts";
import type { ApiTransport } from "../../transport/types.ts";
import type { GpuRoutingSettings } from "../routing.ts";

/** What the dispatcher is built from (createDispatcher's options). */
export interface DispatcherOptions {
  db: Db;
  transport: ApiTransport;
  segmentSeconds: number;
  maxDurationSeconds: number;
  /** Opens a protected video's content key for its transcode's message. */
  contentKeys: ContentKeys;
  urlImport: { maxBytes: number; allowPrivateAddresses: boolean };
  /** A RUNNING job whose worker has been silent this long is queued again. */
  vanishedAfterSeconds: number;
  /**
   * LOCAL_FALLBACK: a job whose capability no worker has heartbeated for `afterSeconds` goes to
   * the API's own worker (the `local` queue) instead; null when off.
   */
  fallback?: { afterSeconds: number } | null;
  /** GPU_ROUTING: transcodes go to the nvenc queue while a worker advertising nvenc is alive; off when absent. */
  gpuRouting?: GpuRoutingSettings;
  /**
   * CHUNK_SECONDS: a transcode sent to the cpu queue while two or more cpu workers have free slots
   * may be split into chunks of about this length; null or absent: never.
   */
  chunking?: { chunkSeconds: number; firstChunkSeconds: number } | null;
}

/** What every part of the dispatcher shares: its options, GPU routing's settings, its start and its wake-up. */
export interface DispatchContext extends DispatcherOptions {
  gpu: GpuRoutingSettings;
  /** When the dispatcher was made (ms since the epoch): fallback waits for workers to report first. */
  startedAt: number;
  /** Dispatches at `at`, sooner than the sweep would. */
  kickAt(at: Date): void;
}

/** The workers with `capability` that heartbeated within `withinSeconds`. */
export const aliveWith = (capability: Capability, withinSeconds: number) => ({
  capabilities: { has: capability },
  lastHeartbeatAt: { gte: new Date(Date.now() - withinSeconds * 1000) },
});

export const workerAlive = async (tx: Pick<Db, "worker">, capability: Capability, withinSeconds: number) =>
  (await tx.worker.count({ where: aliveWith(capability, withinSeconds) })) > 0;

/** True when LOCAL_FALLBACK sends jobs of `capability` to the local worker: none with it is alive. */
export async function capabilityUnserved(
  ctx: Pick<DispatchContext, "fallback" | "startedAt">,
  tx: Pick<Db, "worker">,
  capability: Capability,
): Promise<boolean> {
  if (!ctx.fallback || capability === "cpu" || capability === "local") return false;
  // Until the API has been up that long, silence may only mean workers have not reported yet.
  if (Date.now() - ctx.startedAt < ctx.fallback.afterSeconds * 1000) return false;
  return !(await workerAlive(tx, capability, ctx.fallback.afterSeconds));
}
