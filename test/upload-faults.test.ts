import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { once } from "node:events";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { partialUploadKey } from "../src/protocol/storage-layout.ts";
import { gqlAt } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { canMountTmpfs, mountSmallDisk } from "./support/tmpfs.ts";
import { trickleBody } from "./support/trickled-body.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const run = promisify(execFile);
const VIDEO = graphql(`query($id: ID!) { video(id: $id) { status uploadedBytes } }`);
const DISK_BYTES = 1024 * 1024;

/** Faults a client or the disk brings to `PUT /uploads/…`, seen from a real API process and its log. */
describe("upload faults", () => {
  let db: TestDatabase;
  let dataDir: string;
  let api: ServiceProcess & { url: string };
  let disk: { unmount(): Promise<void> } | null = null;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-upload-faults-"));
    if (canMountTmpfs) disk = await mountSmallDisk(dataDir, DISK_BYTES);
    api = await startApiProcess("api", {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      MAX_UPLOAD_BYTES: String(64 * 1024 * 1024),
    });
  });
  afterAll(async () => {
    await stopAllProcesses();
    await disk?.unmount();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const newUpload = async () => createUpload(api.url, "clip");
  const put = (url: string, body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}${url}`, { method: "PUT", body, headers });
  const partSize = async (videoId: string) =>
    (await stat(path.join(dataDir, partialUploadKey(videoId))).catch(() => null))?.size ?? null;
  const errorLines = () =>
    api
      .log()
      .split("\n")
      .filter((l) => l.includes('"severity":"ERROR"'));

  it(`a client that goes away mid-chunk is logged as info, not an error, and resumes from the bytes \
that arrived`, async () => {
    const { uploadUrl, id } = await newUpload();
    const url = new URL(`${api.url}${uploadUrl}`);
    await new Promise<void>((resolve) => {
      const req = request(url, {
        method: "PUT",
        headers: { "content-length": String(500_000), "content-range": "bytes 0-499999/500000" },
      });
      req.on("error", () => resolve());
      req.write(Buffer.alloc(100_000, 7), () => setTimeout(() => req.destroy(), 200));
    });
    await api.waitForLog(
      new RegExp(`"videoId":"${id}".*"message":"upload chunk interrupted: the client went away"`),
      10_000,
    );
    expect(errorLines()).toEqual([]);
    const held = (await gqlAt(api.url, VIDEO, { id })).video!;
    expect(held.status).toBe("WAITING_FOR_UPLOAD");
    expect(held.uploadedBytes).toBeGreaterThan(0);
    const res = await put(uploadUrl, "", { "content-range": "bytes */500000" });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe(`bytes=0-${held.uploadedBytes - 1}`);
  });

  it(`answers a refused chunk while its body still arrives, then reads the rest of the body instead of \
resetting the connection, and answers the next request on it`, async () => {
    const { uploadUrl } = await newUpload();
    const url = new URL(`${api.url}${uploadUrl}`);
    const socket = connect(Number(url.port), url.hostname);
    const errors: Error[] = [];
    socket.on("error", (err) => errors.push(err));
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    await once(socket, "connect");
    const answers = () => received.match(/^HTTP\/1\.1 \d+/gm) ?? [];
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 100 && !done() && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    };
    const request = (contentRange: string, length: number) =>
      `PUT ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-range: ${contentRange}\r\n` +
      `content-length: ${length}\r\n\r\n`;
    // A file over the URL's 64 MiB limit: refused from its headers, before its body is read.
    const bodyBytes = 4 * 1024 * 1024;
    socket.write(request(`bytes 0-${bodyBytes - 1}/${128 * 1024 * 1024}`, bodyBytes));
    socket.write(Buffer.alloc(64 * 1024));
    await until(() => answers().length === 1);
    expect(answers()).toEqual(["HTTP/1.1 413"]);
    // The rest of the body, over about half a second, as a client that does not read its answer
    // before it has sent everything: closing now would reset the connection under it.
    for (let sent = 64 * 1024; sent < bodyBytes; sent += 256 * 1024) {
      await new Promise((resolve) => socket.write(Buffer.alloc(Math.min(256 * 1024, bodyBytes - sent)), resolve));
      await new Promise((r) => setTimeout(r, 30));
    }
    socket.write(request("bytes */1000", 0));
    await until(() => answers().length === 2);
    socket.destroy();
    expect(errors).toEqual([]);
    expect(answers()).toEqual(["HTTP/1.1 413", "HTTP/1.1 308"]);
  });

  it(`cuts off the body of a PUT to a finished upload (409) that keeps arriving, about 5 s after the \
answer, instead of reading it for as long as the client sends`, async () => {
    const { uploadUrl } = await newUpload();
    expect((await put(uploadUrl, new Uint8Array(1000).fill(7))).status).toBe(200);
    // A declared 32 MiB (under the URL's limit, so the headers alone do not refuse it), sent 64 KiB
    // every 100 ms: 50 s of body, were it read to its end.
    const sent = await trickleBody("PUT", new URL(`${api.url}${uploadUrl}`));
    expect(sent.statusLine).toMatch(/^HTTP\/1\.1 409/);
    expect(sent.cutAfterAnswerMs, "the server still read the body 15 s after its answer").not.toBeNull();
    // Cut off at REFUSED_BODY_LINGER_MS (5 s) after the refusal, with room for a loaded machine.
    expect(sent.cutAfterAnswerMs).toBeGreaterThan(3_000);
    expect(sent.cutAfterAnswerMs).toBeLessThan(9_000);
  });

  it.skipIf(!canMountTmpfs)(
    "a full disk (a real ENOSPC on a 1 MiB tmpfs; needs root) answers 507 with a reason, keeps only the earlier " +
      "chunks, and the upload resumes once there is room",
    async () => {
      const { uploadUrl, id } = await newUpload();
      const total = 3 * 1024 * 1024;
      const file = new Uint8Array(total).map((_, i) => (i * 31) % 251);
      const first = 256 * 1024;

      let res = await put(uploadUrl, file.slice(0, first), { "content-range": `bytes 0-${first - 1}/${total}` });
      expect(res.status).toBe(308);

      const second = 2 * 1024 * 1024;
      res = await put(uploadUrl, file.slice(first, first + second), {
        "content-range": `bytes ${first}-${first + second - 1}/${total}`,
      });
      expect(res.status).toBe(507);
      const body = (await res.json()) as { error: string };
      expect(body.error).toBe(
        `The server's storage is full, so this chunk was not stored; try again later. The first ${first} bytes are ` +
          `kept: resume from byte ${first}.`,
      );
      expect(body.error).not.toContain(dataDir);
      expect(res.headers.get("range")).toBe(`bytes=0-${first - 1}`);
      // The refused chunk left nothing behind: the disk is as full as before it.
      expect(await partSize(id)).toBe(first);
      expect((await gqlAt(api.url, VIDEO, { id })).video).toEqual({
        status: "WAITING_FOR_UPLOAD",
        uploadedBytes: first,
      });
      expect(errorLines()).toEqual([]);
      expect(api.log()).toContain('"message":"upload refused: storage is full"');

      // An operator makes room; the client resumes where the 507 said.
      await run("mount", ["-o", `remount,size=${8 * 1024 * 1024}`, dataDir]);
      res = await put(uploadUrl, file.slice(first), { "content-range": `bytes ${first}-${total - 1}/${total}` });
      expect(res.status).toBe(200);
      expect((await gqlAt(api.url, VIDEO, { id })).video).toEqual({ status: "QUEUED", uploadedBytes: total });
    },
  );

  it.skipIf(!canMountTmpfs)("a first chunk refused for a full disk leaves no file at all (needs root)", async () => {
    const { uploadUrl, id } = await newUpload();
    const total = 16 * 1024 * 1024;
    const res = await put(uploadUrl, new Uint8Array(total), { "content-range": `bytes 0-${total - 1}/${total}` });
    expect(res.status).toBe(507);
    expect(((await res.json()) as { error: string }).error).toBe(
      "The server's storage is full, so this chunk was not stored; try again later. Nothing of the file is kept: " +
        "send it from byte 0.",
    );
    expect(await partSize(id)).toBeNull();
    expect((await gqlAt(api.url, VIDEO, { id })).video!.status).toBe("WAITING_FOR_UPLOAD");
  });
});
