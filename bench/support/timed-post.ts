import http from "node:http";
import { performance } from "node:perf_hooks";

/** POSTs `body` to the API at `base` on `agent`; resolves with the status (0: no answer), the milliseconds it took and the text. */
export function timedPost(
  agent: http.Agent,
  base: URL,
  pathname: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; ms: number; text: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        path: pathname,
        method: "POST",
        headers: { "content-type": "text/plain", "content-length": Buffer.byteLength(body), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            text: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on("error", () => resolve({ status: 0, ms: performance.now() - started, text: "" }));
    req.end(body);
  });
}
