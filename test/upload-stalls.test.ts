import { stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { partialUploadKey } from "../src/protocol/storage-layout.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { startOwnMotoS3, type OwnMotoS3 } from "./support/moto-s3.ts";
import { createUpload } from "./support/uploads.ts";

const IDLE_SECONDS = 3;
const TOTAL = 1000;

/** Raw HTTP on a socket of its own: what a stalled client sends is exactly what the server gets. */
function rawRequest(base: string, head: string, body = "") {
  const { hostname, port } = new URL(base);
  const socket = net.connect(Number(port), hostname);
  let answer = "";
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => (answer += d));
  socket.on("error", () => undefined);
  const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now())));
  socket.write(`${head}\r\n\r\n${body}`);
  return {
    socket,
    closed,
    /** The status line and headers, once they arrived. */
    async answer(timeoutMs: number): Promise<{ status: number; headers: Record<string, string> } | null> {
      const until = Date.now() + timeoutMs;
      while (!answer.includes("\r\n\r\n") && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      if (!answer.includes("\r\n\r\n")) return null;
      const [statusLine, ...lines] = answer.split("\r\n\r\n")[0]!.split("\r\n");
      const headers = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
      );
      return { status: Number(statusLine!.split(" ")[1]), headers };
    },
  };
}

const putHead = (uploadUrl: string, headers: Record<string, string>) =>
  [`PUT ${uploadUrl} HTTP/1.1`, "Host: 127.0.0.1", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join(
    "\r\n",
  );
const statusQuery = (t: TestApp, uploadUrl: string) =>
  rawRequest(
    t.url,
    putHead(uploadUrl, { "Content-Length": "0", "Content-Range": `bytes */${TOTAL}`, Connection: "close" }),
  );

describe("a stalled upload chunk (local storage)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { UPLOAD_IDLE_TIMEOUT_SECONDS: String(IDLE_SECONDS) } });
  });
  afterAll(() => t?.stop());

  it(`keeps an idle kept-alive connection open HTTP_KEEP_ALIVE_SECONDS (620 s), not Node's 5 s: a client that \
reuses it for an upload after a pause is not cut off`, async () => {
    const health = rawRequest(t.url, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive");
    const answer = await health.answer(10_000);
    health.socket.destroy();
    expect(answer?.status).toBe(200);
    expect(answer?.headers["keep-alive"]).toBe("timeout=620");
  });

  it(`a PUT that sends 10 bytes and then nothing is cut off after UPLOAD_IDLE_TIMEOUT_SECONDS, keeping its \
bytes; a status query sent meanwhile answers at once`, async () => {
    const created = await createUpload(t, "stalls");
    const partial = path.join(t.dataDir, partialUploadKey(created.id));
    const sentAt = Date.now();
    const stalled = rawRequest(
      t.url,
      putHead(created.uploadUrl, { "Content-Length": String(TOTAL), "Content-Range": `bytes 0-${TOTAL - 1}/${TOTAL}` }),
      "0123456789",
    );
    try {
      await expect.poll(async () => (await stat(partial).catch(() => null))?.size, { timeout: 2000 }).toBe(10);

      const askedAt = Date.now();
      const status = await statusQuery(t, created.uploadUrl).answer(1000);
      expect(Date.now() - askedAt).toBeLessThan(1000);
      expect(status).toMatchObject({ status: 308, headers: { range: "bytes=0-9" } });

      const closedAt = await Promise.race([stalled.closed, new Promise<null>((r) => setTimeout(r, 8000, null))]);
      expect(closedAt).not.toBeNull();
      expect(closedAt! - sentAt).toBeGreaterThanOrEqual(IDLE_SECONDS * 1000 - 500);
      expect(closedAt! - sentAt).toBeLessThan(IDLE_SECONDS * 1000 + 2500);
      // Recorded once the cut-off request has let go of its storage (the socket closes first).
      const video = () => t.app.services.db.video.findUniqueOrThrow({ where: { id: created.id } });
      await expect.poll(async () => (await video()).uploadedBytes, { timeout: 2000 }).toBe(10n);
      expect((await video()).status).toBe("WAITING_FOR_UPLOAD");
      expect(await statusQuery(t, created.uploadUrl).answer(1000)).toMatchObject({
        status: 308,
        headers: { range: "bytes=0-9" },
      });
    } finally {
      stalled.socket.destroy();
    }
  });
});

describe("a status query while S3 is frozen", () => {
  let t: TestApp;
  let moto: OwnMotoS3;
  beforeAll(async () => {
    moto = await startOwnMotoS3();
    t = await startTestApp({ worker: false, env: await moto.createBucket() });
  });
  afterAll(async () => {
    moto?.freeze(false);
    await t?.stop();
    await moto?.stop();
  });

  it("answers 503 with Retry-After within a bound instead of hanging on the bucket", async () => {
    const created = await createUpload(t, "frozen");
    moto.freeze(true);
    try {
      const askedAt = Date.now();
      const status = await statusQuery(t, created.uploadUrl).answer(10_000);
      expect(Date.now() - askedAt).toBeLessThan(7000);
      expect(status?.status).toBe(503);
      expect(status?.headers["retry-after"]).toBe("5");
    } finally {
      moto.freeze(false);
    }
    expect((await statusQuery(t, created.uploadUrl).answer(10_000))?.status).toBe(308);
  });
});
