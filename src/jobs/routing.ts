import type { JobKind, JobRoutingReason } from "../generated/prisma/enums.ts";
import type { Capability } from "../protocol/worker-messages.ts";
import { JOB_KINDS } from "./kinds/index.ts";

/** GPU_ROUTING and its limits, from the API's environment. */
export interface GpuRoutingSettings {
  /** `off`: every job goes to its capability's queue; `prefer`: GPU-encodable jobs go to nvenc when it is alive. */
  mode: "off" | "prefer";
  /** A job left on the nvenc queue this long without a taker goes to cpu. */
  fallbackAfterSeconds: number;
  /** Sources known to be shorter stay on cpu; a source not probed yet counts as long enough. */
  minSourceSeconds: number;
  /** Sources known to be smaller (height) stay on cpu; a source not probed yet counts as large enough. */
  minHeight: number;
}

/** What `chooseQueue` decides from: the job, its source as far as it is known, and which workers are alive. */
export interface RoutingInput {
  kind: JobKind;
  capability: Capability;
  /**
   * The job left the GPU for good (its `routingReason`): no nvenc worker took it in time
   * (GPU_WAIT_EXPIRED), or an attempt on the nvenc queue failed (GPU_ENCODE_FAILED); null otherwise.
   */
  leftGpu: "GPU_WAIT_EXPIRED" | "GPU_ENCODE_FAILED" | null;
  /**
   * The source's duration and height once probed; null before (an upload's first transcode).
   * `audioOnly`: probed, and it has no picture (nothing for a GPU encoder).
   */
  source: { seconds: number | null; height: number | null; audioOnly?: boolean };
  /** A worker advertising nvenc has heartbeated recently. */
  gpuWorkerAlive: boolean;
  /** LOCAL_FALLBACK applies: no worker with `capability` has heartbeated for FALLBACK_AFTER_SECONDS. */
  capabilityUnserved: boolean;
  gpu: GpuRoutingSettings;
}

export interface Route {
  queue: Capability;
  reason: JobRoutingReason;
}

/**
 * A job whose kind can be encoded on a GPU (the nvenc queue's worker encodes with h264_nvenc: its
 * kind's `gpuEncodable`) and which needs nothing but a CPU.
 */
export function gpuEncodableJob(kind: JobKind, capability: Capability): boolean {
  return JOB_KINDS[kind].gpuEncodable && capability === "cpu";
}

/** The queue a job's attempt is sent to, and why. Pure: the dispatcher gathers the facts. */
export function chooseQueue(input: RoutingInput): Route {
  const { capability, gpu, source } = input;
  if (!gpuEncodableJob(input.kind, capability)) {
    return input.capabilityUnserved && capability !== "cpu" && capability !== "local"
      ? { queue: "local", reason: "LOCAL_FALLBACK" }
      : { queue: capability, reason: "CAPABILITY" };
  }
  if (gpu.mode === "off") return { queue: "cpu", reason: "GPU_ROUTING_OFF" };
  if (input.leftGpu) return { queue: "cpu", reason: input.leftGpu };
  const tooShort = source.seconds !== null && source.seconds < gpu.minSourceSeconds;
  // No picture is below any height minimum: an audio-only source's AAC ladder stays on cpu.
  const tooSmall = source.audioOnly === true || (source.height !== null && source.height < gpu.minHeight);
  if (tooShort || tooSmall) return { queue: "cpu", reason: "SOURCE_BELOW_GPU_MINIMUM" };
  if (!input.gpuWorkerAlive) return { queue: "cpu", reason: "NO_GPU_WORKER" };
  return { queue: "nvenc", reason: "GPU_WORKER_ALIVE" };
}
