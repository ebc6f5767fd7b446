import { chmod, rename, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * A stand-in ffmpeg for a worker (its FFMPEG_PATH) that runs the real one on PATH, except that a run
 * whose working directory or arguments contain a text `hold` named waits before it starts, until
 * that text is released. A video's id is in its source's path, which every encode of it reads, so
 * holding a video's id keeps its job running (started, probed, its worker alive and heartbeating)
 * for exactly as long as a test needs, however fast or slow the machine is: no long clip to keep a
 * slot busy, no race to catch a process and stop it.
 */
export async function heldFfmpeg(dir: string): Promise<{
  /** The script to give the worker as FFMPEG_PATH. */
  path: string;
  hold(text: string): Promise<void>;
  release(text: string): Promise<void>;
  releaseAll(): Promise<void>;
}> {
  const script = path.join(dir, "held-ffmpeg");
  const holdFile = path.join(dir, "held-ffmpeg.holds");
  const quoted = `'${holdFile.replaceAll("'", `'\\''`)}'`;
  await writeFile(
    script,
    `#!/bin/sh
# Written by test/support/held-ffmpeg.ts: waits while a line of the holds file is in $PWD or the arguments.
held() {
  [ -f ${quoted} ] || return 1
  while IFS= read -r text; do
    [ -n "$text" ] || continue
    case "$PWD $*" in *"$text"*) return 0 ;; esac
  done < ${quoted}
  return 1
}
while held "$@"; do sleep 0.05; done
exec ffmpeg "$@"
`,
  );
  await chmod(script, 0o755);
  const holds = new Set<string>();
  // Written aside and renamed over: a script reading it never sees it half written (or empty).
  const write = async () => {
    await writeFile(`${holdFile}.next`, [...holds].map((h) => `${h}\n`).join(""));
    await rename(`${holdFile}.next`, holdFile);
  };
  await write();
  return {
    path: script,
    async hold(text) {
      if (!text || text.includes("\n")) throw new Error("heldFfmpeg: hold one non-empty line");
      holds.add(text);
      await write();
    },
    async release(text) {
      holds.delete(text);
      await write();
    },
    async releaseAll() {
      holds.clear();
      await write();
    },
  };
}
