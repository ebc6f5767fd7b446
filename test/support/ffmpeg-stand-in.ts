import { chmod, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fixturesDir } from "./media-fixtures.ts";

/**
 * A stand-in ffmpeg for a worker (its FFMPEG_PATH): a run whose arguments match `pattern` (a shell
 * `case` pattern) runs `command` instead (`what` says what it does); any other is ffmpeg's own. The
 * script lies in the test file's own temp dir (`fixturesDir`), removed after its last test.
 */
export async function ffmpegStandIn(name: string, what: string, pattern: string, command: string): Promise<string> {
  const script = path.join(fixturesDir(), name);
  await writeFile(
    script,
    `#!/bin/sh
# Written by test/support/ffmpeg-stand-in.ts: ${what}.
case " $* " in
  ${pattern}) ${command} ;;
esac
exec ffmpeg "$@"
`,
  );
  await chmod(script, 0o755);
  return script;
}

/**
 * Live encodes read their feed at half its pace (`-readrate 0.5`): an encode behind its broadcast on
 * any machine, as a loaded one runs. With `once`, only the worker's first live encode does: the
 * encode after it reads the tail at the feed's own pace (a tail read at half pace is seconds of wall
 * that prove nothing more).
 */
export async function slowLiveFfmpeg({ once = false } = {}): Promise<string> {
  const slowed = path.join(fixturesDir(), "slow-live-ffmpeg.slowed");
  await rm(slowed, { force: true });
  const slow = `exec ffmpeg -readrate 0.5 "$@"`;
  return ffmpegStandIn(
    once ? "slow-once-live-ffmpeg" : "slow-live-ffmpeg",
    once ? "the first live encode reads its feed at half its pace" : "a live encode reads its feed at half its pace",
    `*"/live/v1/feeds/"*" -f segment "*`,
    once ? `[ -e '${slowed}' ] || { : > '${slowed}'; ${slow}; }` : slow,
  );
}
