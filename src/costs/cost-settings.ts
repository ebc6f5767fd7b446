import type { Env } from "../config.ts";
import type { CostSettings } from "./cost-model.ts";

/** The cost model's settings from the environment (the COST_* variables of src/config.ts). */
export function costSettings(env: Env): CostSettings {
  return {
    prices: {
      vcpuSecondUsd: env.COST_VCPU_SECOND_USD,
      gibSecondUsd: env.COST_GIB_SECOND_USD,
      l4GpuSecondUsd: env.COST_L4_GPU_SECOND_USD,
      storageGbMonthUsd: env.COST_STORAGE_GB_MONTH_USD,
      egressGbUsd: env.COST_EGRESS_GB_USD,
    },
    cpu: {
      x264PerMegapixelMinute: env.COST_X264_CPU_SECONDS_PER_MEGAPIXEL_MINUTE,
      decodePerMegapixelMinute: env.COST_DECODE_CPU_SECONDS_PER_MEGAPIXEL_MINUTE,
      jobOverheadCpuSeconds: env.COST_JOB_OVERHEAD_CPU_SECONDS,
    },
    workerVcpus: env.COST_WORKER_VCPUS,
    jobMemoryGib: env.COST_JOB_MEMORY_GIB,
    assumedSourceBitrate: env.COST_ASSUMED_SOURCE_BITRATE,
    nvencRealtimeSpeed: env.COST_NVENC_REALTIME_SPEED,
  };
}
