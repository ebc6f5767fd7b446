import { tmpdir } from "node:os";
import type { Capability } from "../../src/protocol/worker-messages.ts";
import type { Rung } from "../../src/protocol/media-facts.ts";
import { withoutLogPrefix, type MediaError } from "./errors.ts";
import { runFfmpeg } from "./ffmpeg-process.ts";
import { log } from "../log.ts";

/** The H.264 encoders the worker uses: x264 on any CPU, NVENC on NVIDIA GPUs that have the engine. */
export type VideoEncoder = "libx264" | "h264_nvenc";

/**
 * NVENC's H.264 encoder refuses frames narrower or lower than this ("Frame Dimension less than
 * the minimum supported value"; FFmpeg trac #9251: 144x144 fails, 145x145 encodes).
 */
const NVENC_MIN_SIDE = 145;

/** The encoder for one rung: h264_nvenc falls back to libx264 for rungs NVENC cannot encode (144p). */
export function rungEncoder(encoder: VideoEncoder, rung: Rung): VideoEncoder {
  if (encoder !== "h264_nvenc") return encoder;
  return Math.min(rung.width ?? 0, rung.height ?? 0) < NVENC_MIN_SIDE ? "libx264" : encoder;
}

/**
 * Whether H.264 can be encoded with NVENC here: a 0.1 s encode of a generated frame, the one
 * check that covers GPU, driver, the libnvidia-encode library mounted into the container and
 * ffmpeg's build. Never rejects: any failure is `false`, and `onFailure` gets ffmpeg's reason.
 */
export async function probeNvenc(
  opts: { timeoutMs?: number; onFailure?: (reason: string) => void } = {},
): Promise<boolean> {
  try {
    await runFfmpeg({
      // Both sides at least NVENC_MIN_SIDE, or a healthy GPU would fail the probe.
      inputs: [{ source: "color=c=black:s=256x256:r=25:d=0.1", options: ["-f", "lavfi"] }],
      outputs: [{ target: "-", options: ["-c:v", "h264_nvenc", "-f", "null"] }],
      cwd: tmpdir(),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    return true;
  } catch (err) {
    // The encoder's own line ("Cannot load libcuda.so.1", "No capable devices found") says more
    // than ffmpeg's closing "Conversion failed!".
    const lines = ((err as MediaError).stderrTail ?? "").split("\n");
    const encoderLines = lines.filter((l) => !/^\s/.test(l) && /nvenc|cuda|nvidia/i.test(l)).map(withoutLogPrefix);
    opts.onFailure?.(encoderLines.length ? encoderLines.join("; ") : (err as Error).message);
    return false;
  }
}

/**
 * Whether to take nvenc jobs: the probe encode must pass, or a worker that advertised nvenc would
 * take GPU jobs only to fail each one. Logs the outcome, loudly when NVENC does not work
 * (`capabilitiesLeft`: what the worker serves without it). Returns why not, or null when it works.
 */
export async function checkNvencAtStart(
  capabilitiesLeft: Capability[],
  probe: typeof probeNvenc = probeNvenc,
): Promise<string | null> {
  let reason = "no reason given";
  if (await probe({ onFailure: (r) => (reason = r) })) {
    log.info("NVENC probe encode succeeded: taking nvenc jobs");
    return null;
  }
  log.error(
    "NVENC IS NOT AVAILABLE: the probe encode with h264_nvenc failed, so this worker will NOT take nvenc jobs",
    {
      reason,
      capabilities: capabilitiesLeft,
      hint:
        "needs an NVIDIA GPU with NVENC (L4, T4, A10, L40S; not A100/H100/H200) and " +
        "NVIDIA_DRIVER_CAPABILITIES including video",
    },
  );
  return reason;
}

/**
 * Counts how nvenc jobs end. A GPU can pass the probe and still fail every real encode (a driver
 * fault, the session limit, out of memory): after `maxFailuresInARow` h264_nvenc encodes in a row
 * failed, the worker should stop taking nvenc jobs, so they go to workers that can do them.
 */
export function createNvencFailureCounter(maxFailuresInARow: number) {
  let failuresInARow = 0;
  return {
    /** Counts a job's end (null: it succeeded); true when the failures in a row reached the limit. */
    count(failure: { retryable?: boolean; command?: string } | null): boolean {
      if (failure === null) {
        failuresInARow = 0;
        return false;
      }
      // A source that cannot work, or a failure outside the encoder, says nothing about the GPU.
      if (failure.retryable === false || !failure.command?.includes("h264_nvenc")) return false;
      failuresInARow++;
      return failuresInARow >= maxFailuresInARow;
    },
    get failuresInARow(): number {
      return failuresInARow;
    },
  };
}
