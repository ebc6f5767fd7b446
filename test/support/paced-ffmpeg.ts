import { chmod, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { fixturesDir } from "./media-fixtures.ts";

/**
 * A stand-in ffmpeg for a worker (its FFMPEG_PATH) that runs the real one on PATH, reading a ladder
 * encode's source at its own rate (`-readrate 1`): a test that needs an encode running while it
 * kills, cancels or cuts something gets one that lasts the clip's length on any machine, and costs
 * the CPU of the frames encoded in that time instead of a long clip's at full speed. Only ladder
 * encodes (`-f hls` or `-f segment`) are paced; probes, posters and images are not. An encode that
 * runs to its end costs as much as unpaced and takes longer: pace only encodes a test cuts short.
 * The script lies in the test file's own temp dir (`fixturesDir`), removed after its last test.
 */
export async function pacedFfmpeg(): Promise<string> {
  const script = path.join(fixturesDir(), "paced-ffmpeg");
  // Written aside and renamed over: a worker already running it never reads it half written.
  const next = `${script}.${process.pid}.next`;
  await writeFile(
    next,
    `#!/bin/sh
# Written by test/support/paced-ffmpeg.ts: a ladder encode reads its first input at its own rate.
case " $* " in
  *" -f hls "*|*" -f segment "*) exec ffmpeg -readrate 1 "$@" ;;
esac
exec ffmpeg "$@"
`,
  );
  await chmod(next, 0o755);
  await rename(next, script);
  return script;
}
