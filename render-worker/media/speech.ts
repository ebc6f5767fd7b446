import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { mediaToolPath } from "../../src/shared/media-tools.ts";
import { abortError, MediaError } from "./errors.ts";
import { mediaToolEnv } from "./tool-environment.ts";
import { diesWithWorker } from "./tool-process.ts";

const ESPEAK = mediaToolPath("espeak-ng");

/**
 * Speaks `text` with espeak-ng into a WAV file in `workDir`. The text goes through a file (`-f`),
 * never the command line, so a question starting with `-` is read, not taken for an option.
 */
export async function synthesizeSpeech(args: {
  text: string;
  voice: string;
  outFile: string;
  workDir: string;
  signal: AbortSignal;
}): Promise<void> {
  const textFile = `${args.outFile}.txt`;
  await writeFile(path.join(args.workDir, textFile), args.text);
  const argv = ["-v", args.voice, "-w", args.outFile, "-f", textFile];
  const command = [ESPEAK, ...argv].join(" ");
  await new Promise<void>((resolve, reject) => {
    const espeak = diesWithWorker(ESPEAK, argv);
    execFile(
      espeak.file,
      espeak.args,
      { cwd: args.workDir, timeout: 60_000, killSignal: "SIGKILL", signal: args.signal, env: mediaToolEnv() },
      (error, _stdout, stderr) => {
        if (args.signal.aborted) return reject(abortError(args.signal));
        if (!error) return resolve();
        const exitCode = typeof error.code === "number" ? error.code : null;
        const stderrTail = stderr.trim().split("\n").slice(-20).join("\n") || undefined;
        // An unknown voice is the job's mistake; a missing or killed espeak-ng may pass.
        const unknownVoice = /voice|language/i.test(stderr) && exitCode !== null;
        reject(
          new MediaError(
            unknownVoice
              ? `espeak-ng cannot speak with voice "${args.voice}": ${stderr.trim()}`
              : `espeak-ng failed: ${error.message}`,
            {
              retryable: !unknownVoice,
              command,
              stderrTail,
              exitCode,
              cause: error,
            },
          ),
        );
      },
    );
  });
}
