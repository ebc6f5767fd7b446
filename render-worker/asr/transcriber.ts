import { existsSync } from "node:fs";
import { readFile, realpath } from "node:fs/promises";
import path from "node:path";
import { runSandboxed, type SandboxLimits, type SandboxResult } from "../sandbox/bubblewrap.ts";

/** The project's speech recognition virtualenv (`npm run setup:asr`). */
const PROJECT_ASR_VENV = path.resolve(import.meta.dirname, "../../.tools/asr");
/** The Python entry the sandbox runs: faster-whisper over one WAV, segments as JSON lines. */
const TRANSCRIBE_SCRIPT = path.resolve(import.meta.dirname, "transcribe.py");

/** Where the transcriber's Python is, and what the sandbox must show of the host to run it. */
export interface AsrInstall {
  python: string;
  readOnlyPaths: string[];
}

/** Whether the project's ASR virtualenv is installed (its stamp is written last by setup-asr.sh). */
export function asrInstalled(venv = PROJECT_ASR_VENV): boolean {
  return existsSync(path.join(venv, "bin", "python")) && existsSync(path.join(venv, "pyvenv.cfg"));
}

/** The virtualenv's Python and the read-only paths it needs (the venv where it really is, the base Python's prefix). */
export async function locateAsr(venv = PROJECT_ASR_VENV): Promise<AsrInstall> {
  if (!asrInstalled(venv)) throw new Error(`no speech recognition virtualenv at ${venv} (npm run setup:asr)`);
  const real = await realpath(venv);
  const cfg = await readFile(path.join(real, "pyvenv.cfg"), "utf8");
  const home = /^home\s*=\s*(.+)$/m.exec(cfg)?.[1]?.trim();
  const basePrefix = home ? path.dirname(await realpath(home)) : null;
  return {
    python: path.join(real, "bin", "python"),
    readOnlyPaths: [real, path.dirname(TRANSCRIBE_SCRIPT), ...(basePrefix && basePrefix !== "/" ? [basePrefix] : [])],
  };
}

/** One recognised segment, as the Python entry prints it. */
export interface TranscriptSegment {
  start: number;
  end: number;
  text: string;
}

/** Limits of one transcription: generous for the model (tiny.en runs at a few times real time on one core). */
export function transcribeLimits(audioSeconds: number, cpus: number): SandboxLimits {
  return {
    cpuSeconds: Math.ceil(120 + audioSeconds * 2 * cpus),
    wallMs: Math.ceil((120 + audioSeconds * 2) * 1000),
    memoryBytes: 3 * 1024 ** 3,
    processes: 256,
    cpus,
    outputBytes: 16 * 1024 ** 2,
    logBytes: 64 * 1024 ** 2,
  };
}

/**
 * Runs the transcriber on `wav` (a file in `workDir`) in the sandbox (no network, limits per run),
 * calling `onSegment` for each segment as the model yields it. Resolves with every segment; a run
 * that fails rejects with the command and the stderr tail.
 */
export async function transcribeWav(args: {
  install: AsrInstall;
  workDir: string;
  wav: string;
  language: string;
  limits: SandboxLimits;
  signal: AbortSignal;
  onSegment(segment: TranscriptSegment): void;
}): Promise<TranscriptSegment[]> {
  const segments: TranscriptSegment[] = [];
  let pending = "";
  let done = false;
  const readLine = (line: string) => {
    if (!line.trim()) return;
    const parsed = parseLine(line);
    if (parsed?.type === "segment") {
      segments.push(parsed.segment);
      args.onSegment(parsed.segment);
    } else if (parsed?.type === "done") {
      done = true;
    }
  };
  const cpus = args.limits.cpus ?? 1;
  const result = await runSandboxed({
    command: [args.install.python, TRANSCRIBE_SCRIPT, args.wav, args.language, String(Math.max(1, Math.floor(cpus)))],
    workDir: args.workDir,
    limits: args.limits,
    readOnlyPaths: args.install.readOnlyPaths,
    env: { HF_HUB_OFFLINE: "1", PYTHONDONTWRITEBYTECODE: "1", OMP_NUM_THREADS: String(Math.max(1, Math.floor(cpus))) },
    signal: args.signal,
    onOutput: (stream, text) => {
      if (stream !== "stdout") return;
      pending += text;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        readLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    },
  });
  readLine(pending);
  if (args.signal.aborted) return segments;
  if (result.limit !== null || result.exitCode !== 0 || !done) throw transcriberFailure(result);
  return segments;
}

function parseLine(line: string): { type: "segment"; segment: TranscriptSegment } | { type: "done" } | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  if (v.type === "done") return { type: "done" };
  if (v.type !== "segment") return null;
  const { start, end, text } = v;
  if (typeof start !== "number" || typeof end !== "number" || typeof text !== "string") return null;
  if (!Number.isFinite(start) || !Number.isFinite(end) || start < 0) return null;
  return { type: "segment", segment: { start, end: Math.max(start, end), text: text.slice(0, 2000) } };
}

function transcriberFailure(result: SandboxResult): Error {
  const details = { command: result.command, stderrTail: result.stderrTail || undefined, exitCode: result.exitCode };
  const why =
    result.limit !== null
      ? `it reached its ${result.limit} limit`
      : result.exitCode === 127
        ? "the transcriber is not installed in the sandbox"
        : `it exited with ${result.signal ?? `code ${result.exitCode}`}`;
  // A limit reached will be reached again; a crash or a missing install may not be on another worker.
  return Object.assign(new Error(`Speech recognition failed: ${why}`), {
    retryable: result.limit === null,
    ...details,
  });
}
