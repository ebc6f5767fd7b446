import { programOnPath } from "../../src/shared/media-tools.ts";
import { log } from "../log.ts";

let setprivPath: string | null | undefined;

function findSetpriv(): string | null {
  const found = programOnPath("setpriv");
  if (found) return found;
  log.warn("setpriv (util-linux) not found: ffmpeg, ffprobe and espeak-ng will outlive a worker that is killed");
  return null;
}

/**
 * The command line that runs `file args` so that the kernel kills it (SIGKILL) when the worker
 * dies, however it dies: setpriv sets the parent-death signal and then execs the tool, so the
 * tool keeps its pid and a kill of that pid still reaches it. Without it, ffmpeg re-parents to
 * PID 1 and encodes on for a worker that is gone.
 */
export function diesWithWorker(file: string, args: string[]): { file: string; args: string[] } {
  setprivPath ??= findSetpriv();
  return setprivPath ? { file: setprivPath, args: ["--pdeathsig", "KILL", "--", file, ...args] } : { file, args };
}
