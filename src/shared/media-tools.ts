/** The variable naming each media tool's program; unset or empty, the tool is found on PATH. */
export const MEDIA_TOOL_PATH_ENV = {
  ffmpeg: "FFMPEG_PATH",
  ffprobe: "FFPROBE_PATH",
  "espeak-ng": "ESPEAK_PATH",
} as const;

export type MediaTool = keyof typeof MEDIA_TOOL_PATH_ENV;

/** The program to run for `tool`: the worker's encodes and the API's thumbnails run the same ffmpeg. */
export function mediaToolPath(tool: MediaTool, env: NodeJS.ProcessEnv = process.env): string {
  return env[MEDIA_TOOL_PATH_ENV[tool]] || tool;
}
