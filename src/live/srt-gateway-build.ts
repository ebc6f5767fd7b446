import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where `npm run setup:srt` builds the SRT ingest's gateway (src/live/srt-gateway.c). */
export const SRT_GATEWAY_PATH = fileURLToPath(new URL("../../.tools/srt-gateway/srt-gateway", import.meta.url));

/** Whether the gateway is built (`npm run setup:srt`); without it the API runs with RTMP ingest only. */
export function srtGatewayBuilt(path = SRT_GATEWAY_PATH): boolean {
  return existsSync(path);
}
