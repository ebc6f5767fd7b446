import type { Capability } from "../src/protocol/worker-messages.ts";
import type { ManimSettings } from "./handlers/types.ts";
import { asrInstalled } from "./asr/transcriber.ts";
import { log } from "./log.ts";
import { checkManimAtStart, manimDetected, type probeManim } from "./manim/capability.ts";
import { checkNvencAtStart, createNvencFailureCounter, type probeNvenc } from "./media/nvenc.ts";

export interface CapabilityOptions {
  capabilities: Capability[];
  tmpDir: string;
  /** Checks that NVENC works on this machine before the worker takes nvenc jobs. Default `probeNvenc`. */
  probeNvenc?: typeof probeNvenc;
  /** After this many nvenc encodes in a row failed, the worker stops taking nvenc jobs. Default 3. */
  nvencMaxConsecutiveFailures?: number;
  /** The manim program and its limits, for manim jobs. Default: see locateManim. */
  manim?: ManimSettings;
  /** Checks that a scene renders in the sandbox before the worker takes manim jobs. Default `probeManim`. */
  probeManim?: typeof probeManim;
  /** Also take manim jobs, unasked, when Manim is installed and its test render passes (WORKER_DETECT_MANIM). */
  detectManim?: boolean;
  /** Also take asr jobs, unasked, when speech recognition is installed (WORKER_DETECT_ASR). */
  detectAsr?: boolean;
  /** Whether speech recognition is installed here. Default `asrInstalled` (.tools/asr, npm run setup:asr). */
  asrInstalled?: () => boolean;
}

/** What the capability set asks of the worker when it changes. */
interface CapabilityHooks {
  consume(capabilities: Capability[]): Promise<void>;
  stopConsuming(capabilities: Capability[]): Promise<void>;
  /** Tells the API (a heartbeat). */
  announce(): Promise<void>;
}

/**
 * The capabilities the worker serves: those asked for, less NVENC when its probe fails or its
 * encodes keep failing, and Manim once its test render (asked for, or detected) passes.
 */
export function createCapabilities(options: CapabilityOptions, hooks: CapabilityHooks) {
  let serving = [...options.capabilities];
  /** Capabilities whose test runs now: heartbeats say so, and the API accepts their jobs meanwhile. */
  let probing: Capability[] = [];
  let askedManim = false;
  const nvencFailures = createNvencFailureCounter(options.nvencMaxConsecutiveFailures ?? 3);

  /** The capabilities to test after connecting: manim when asked for, or detected installed. */
  async function manimToProbe(): Promise<Capability[]> {
    if (serving.includes("manim")) return ["manim"];
    if (!options.detectManim) return [];
    return (await manimDetected({ bin: options.manim?.bin, sandboxPath: options.manim?.sandboxPath })) ? ["manim"] : [];
  }

  return {
    serving: (): Capability[] => serving,
    probing: (): Capability[] => probing,

    /**
     * Before the worker connects: drops nvenc when its probe encode fails, and sets manim aside to
     * test after connecting (its test render takes seconds). Throws when no capability is left.
     */
    async probeBeforeConnecting(): Promise<void> {
      if (serving.includes("nvenc")) {
        const withoutNvenc = serving.filter((c) => c !== "nvenc");
        const failure = await checkNvencAtStart(withoutNvenc, options.probeNvenc);
        if (failure !== null) {
          serving = withoutNvenc;
          if (serving.length === 0) {
            throw new Error(
              `WORKER_CAPABILITIES asks only for nvenc, but NVENC does not work on this machine (${failure}); no ` +
                `capability left to serve`,
            );
          }
        }
      }
      serving = withAsrIfInstalled(serving, options);
      probing = await manimToProbe();
      askedManim = serving.includes("manim");
      serving = serving.filter((c) => !probing.includes(c));
    },

    /**
     * Once the worker takes its other queues: manim's test render, then its queue when it passes.
     * False when shutdown began meanwhile; throws when no capability is left.
     */
    async probeAfterConnecting(shuttingDown: () => boolean): Promise<boolean> {
      if (probing.length === 0) return true;
      const failure = await checkManimAtStart({
        bin: options.manim?.bin,
        sandboxPath: options.manim?.sandboxPath,
        asked: askedManim,
        tmpDir: options.tmpDir,
        capabilities: serving,
        probe: options.probeManim,
      });
      if (shuttingDown()) return false;
      if (failure === null) {
        await hooks.consume(["manim"]);
        serving = [...serving, "manim"];
      }
      probing = [];
      if (serving.length === 0) {
        throw new Error(
          `WORKER_CAPABILITIES asks only for manim, but manim does not run in the sandbox here (${failure}); no ` +
            `capability left to serve`,
        );
      }
      await hooks.announce();
      return true;
    },

    /**
     * Counts how an nvenc job ended (null: it succeeded); drops `nvenc` and its queue once its
     * encodes keep failing (the API sends a failed attempt's retry to cpu already).
     */
    async countNvencOutcome(failure: (Error & { retryable?: boolean; command?: string; stderrTail?: string }) | null) {
      if (!nvencFailures.count(failure) || !serving.includes("nvenc") || failure === null) return;
      serving = serving.filter((c) => c !== "nvenc");
      log.error(
        "NVENC DROPPED: nvenc encodes keep failing although the probe encode succeeded, so this worker stops " +
          "taking nvenc jobs until it is restarted",
        {
          failuresInARow: nvencFailures.failuresInARow,
          lastError: failure.message,
          stderrTail: failure.stderrTail,
          capabilities: serving,
          hint: "restarting the worker probes NVENC again; check the GPU's memory, encoder sessions and driver",
        },
      );
      await hooks.stopConsuming(["nvenc"]);
      await hooks.announce();
    },
  };
}

/**
 * `capabilities` with `asr` where speech recognition is installed: added when detecting, dropped
 * (loudly) when asked for and missing. Throws when nothing is left to serve.
 */
function withAsrIfInstalled(capabilities: Capability[], options: CapabilityOptions): Capability[] {
  const installed = (options.asrInstalled ?? asrInstalled)();
  const asked = capabilities.includes("asr");
  if (installed) return asked || !options.detectAsr ? capabilities : [...capabilities, "asr"];
  if (!asked) return capabilities;
  const left = capabilities.filter((c) => c !== "asr");
  if (left.length === 0) {
    throw new Error(
      "WORKER_CAPABILITIES asks only for asr, but speech recognition is not installed (npm run setup:asr)",
    );
  }
  log.error("ASR DROPPED: WORKER_CAPABILITIES asks for asr, but speech recognition is not installed here", {
    hint: "npm run setup:asr installs it into .tools/asr",
    capabilities: left,
  });
  return left;
}
