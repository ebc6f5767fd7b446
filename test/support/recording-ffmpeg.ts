import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * A stand-in ffmpeg (an FFMPEG_PATH) that writes each start's arguments, a line each, to a file in
 * `dir`, then runs the real one on PATH. The path is written into the script: a media tool gets no
 * variables to read. `calls` reads the lines written so far.
 */
export async function recordingFfmpeg(dir: string): Promise<{ path: string; calls(): Promise<string[]> }> {
  const log = path.join(dir, "ffmpeg-calls.txt");
  const script = path.join(dir, "recording-ffmpeg");
  await writeFile(script, `#!/bin/sh\necho "$@" >> '${log}'\nexec ffmpeg "$@"\n`);
  await chmod(script, 0o755);
  return {
    path: script,
    async calls() {
      const text = await readFile(log, "utf8").catch(() => "");
      return text.trim() === "" ? [] : text.trim().split("\n");
    },
  };
}
