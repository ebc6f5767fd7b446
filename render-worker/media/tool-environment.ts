/**
 * The only variables ffmpeg, ffprobe and espeak-ng get. They parse tenant input, and a flaw in a
 * parser must find no credentials (DATABASE_URL, cloud keys) in its own environment.
 */
export const MEDIA_TOOL_ENV_NAMES = ["PATH", "LANG", "LC_ALL", "TZ", "ESPEAK_DATA_PATH"];

/** The media tools' environment: `MEDIA_TOOL_ENV_NAMES` taken from the worker's, nothing else. */
export function mediaToolEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of MEDIA_TOOL_ENV_NAMES) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}
