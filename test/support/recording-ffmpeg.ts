import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { programOnPath } from "../../src/shared/media-tools.ts";

/**
 * A stand-in ffmpeg, or ffprobe with `program`, that writes each start's arguments, a line each, to
 * a file in `dir`, then runs the real one (the first on PATH now). Use `path` as FFMPEG_PATH or
 * FFPROBE_PATH where the program reads them when the test starts it, or put `bin` first on PATH
 * (the stand-in is named as the program there) for one already running. The paths are written into
 * the script: a media tool gets no variables to read. `calls` reads the lines written so far.
 */
export async function recordingFfmpeg(
  dir: string,
  program: "ffmpeg" | "ffprobe" = "ffmpeg",
): Promise<{ path: string; bin: string; calls(): Promise<string[]> }> {
  const log = path.join(dir, `${program}-calls.txt`);
  const bin = path.join(dir, `recording-${program}`);
  const script = path.join(bin, program);
  const real = programOnPath(program);
  if (!real) throw new Error(`${program} is not on PATH`);
  await mkdir(bin, { recursive: true });
  await writeFile(script, `#!/bin/sh\necho "$@" >> '${log}'\nexec '${real}' "$@"\n`);
  await chmod(script, 0o755);
  return {
    path: script,
    bin,
    async calls() {
      const text = await readFile(log, "utf8").catch(() => "");
      return text.trim() === "" ? [] : text.trim().split("\n");
    },
  };
}
