import { accessSync, constants } from "node:fs";
import path from "node:path";

/** The variable naming each media tool's program; unset or empty, the tool is found on PATH. */
export const MEDIA_TOOL_PATH_ENV = {
  ffmpeg: "FFMPEG_PATH",
  ffprobe: "FFPROBE_PATH",
  "espeak-ng": "ESPEAK_PATH",
} as const;

export type MediaTool = keyof typeof MEDIA_TOOL_PATH_ENV;

/** The file of `program` in the first directory of PATH (default `/usr/bin:/bin`) that has it, or null. */
export function programOnPath(program: string, searchPath = process.env.PATH ?? "/usr/bin:/bin"): string | null {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The program to run for `tool`: the worker's encodes and the API's thumbnails run the same ffmpeg. */
export function mediaToolPath(tool: MediaTool, env: NodeJS.ProcessEnv = process.env): string {
  return env[MEDIA_TOOL_PATH_ENV[tool]] || tool;
}

/** The environment of a tool the API runs on tenants' bytes: nothing but PATH (no secrets). */
export function toolEnvironment(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin" };
}

/** Keeps the last `maxChars` of a child's stderr; the returned function reads them. */
export function stderrTail(child: { stderr: NodeJS.ReadableStream | null }, maxChars = 2_000): () => string {
  let tail = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    tail = (tail + chunk).slice(-maxChars);
  });
  return () => tail;
}
