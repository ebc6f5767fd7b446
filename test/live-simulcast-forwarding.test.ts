import { execFile } from "node:child_process";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/free-port.ts";
import { LIVE_SIMULCAST_HEADER, LIVE_SIMULCAST_TARGETS_HEADER } from "../src/protocol/live-messages.ts";
import { anyAddress, publicAddressesOnly } from "../render-worker/net/address-policy.ts";
import { checkedUrl, forwardSimulcast } from "../render-worker/media/simulcast.ts";
import { waitFor } from "./support/wait-for.ts";

// The worker's forwarding on its own (render-worker/media/simulcast.ts), against a stand-in for the
// API's feed (an HTTP server giving the targets and a real FLV made by ffmpeg from lavfi) and a TCP
// listener standing for the target: the address policy is applied again at each connect.

const TARGET_ID = "7d1d4d36-5f0e-4d5e-9a39-0b0b0b0b0b0b";

let dir: string;
let flv: Buffer;
let feed: HttpServer;
let feedUrl: string;
let target: Server;
let targetPort: number;
let connections = 0;
let allowPrivateAddresses = false;
const forwarderReads: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "vg-forwarding-"));
  const file = path.join(dir, "feed.flv");
  await promisify(execFile)("ffmpeg", [
    ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine"],
    ...["-t", "3", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "flv", file],
  ]);
  flv = await readFile(file);
  target = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  targetPort = await freePort();
  await new Promise<void>((resolve) => target.listen(targetPort, "127.0.0.1", resolve));
  feed = createHttpServer((req, res) => {
    if (req.method === "HEAD") return void res.writeHead(200).end();
    if (req.headers[LIVE_SIMULCAST_TARGETS_HEADER]) {
      const targets = [{ id: TARGET_ID, url: `rtmp://127.0.0.1:${targetPort}/app/the_key`, streamKey: "the_key" }];
      res.setHeader("content-type", "application/json");
      return void res.end(JSON.stringify({ allowPrivateAddresses, targets }));
    }
    forwarderReads.push(String(req.headers[LIVE_SIMULCAST_HEADER]));
    res.end(flv);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => feed.listen(port, "127.0.0.1", resolve));
  feedUrl = `http://127.0.0.1:${port}/live/v1/feeds/v.flv?sig=x`;
});
afterAll(async () => {
  feed?.close();
  target?.close();
  await rm(dir, { recursive: true, force: true });
});

function forward() {
  const changes: { state: string; error: string | null }[] = [];
  const forwarding = forwardSimulcast({
    feedUrl,
    workDir: dir,
    signal: new AbortController().signal,
    report: async (change) => void changes.push(change),
    pollMs: 200,
  });
  return { changes, forwarding };
}

describe("a target's forwarding", () => {
  it("refuses a target whose host is not public at connect time, never connecting (fails without the check)", async () => {
    allowPrivateAddresses = false;
    const { changes, forwarding } = forward();
    await waitFor(
      "a refusal",
      async () => changes,
      (c) => c.some((x) => x.state === "RETRYING"),
      20_000,
    );
    await forwarding.stop();
    expect(changes.find((x) => x.state === "RETRYING")!.error).toContain("not a public address");
    expect(connections).toBe(0);
    expect(forwarderReads).toHaveLength(0);
    expect(changes.at(-1)!.state).toBe("STOPPED");
  });

  it("connects where the policy allows it, reading the feed as a forwarder, and keeps the key out of its errors", async () => {
    allowPrivateAddresses = true;
    const { changes, forwarding } = forward();
    await waitFor(
      "a retry",
      async () => changes,
      (c) => c.some((x) => x.state === "RETRYING"),
      20_000,
    );
    await forwarding.stop();
    expect(connections).toBeGreaterThan(0);
    expect(forwarderReads[0]).toBe(TARGET_ID);
    const errors = changes.map((x) => x.error ?? "").join(" ");
    expect(errors).not.toContain("the_key");
    expect(changes.at(-1)!.state).toBe("STOPPED");
  });
});

describe("where a target's ffmpeg connects", () => {
  it("pins an rtmp:// or srt:// target named by host to the address it checked (RTMP's tcUrl still names the host); rtmps keeps its name for TLS", async () => {
    // `localhost` stands for any name: what is resolved and checked is what ffmpeg is given, so a
    // DNS answer that changes between the check and the connect (rebinding) cannot move it.
    const rtmp = await checkedUrl("rtmp://localhost:19350/live2/the-key", anyAddress);
    expect(rtmp.url).toMatch(/^rtmp:\/\/(127\.0\.0\.1|\[::1\]):19350\/live2\/the-key$/);
    expect(rtmp.tcUrl).toBe("rtmp://localhost:19350/live2");
    const defaultPort = await checkedUrl("rtmp://localhost/app/key", anyAddress);
    expect(defaultPort.tcUrl).toBe("rtmp://localhost:1935/app");
    const srt = await checkedUrl("srt://localhost:9000?mode=caller&streamid=k", anyAddress);
    expect(srt.url).toMatch(/^srt:\/\/(127\.0\.0\.1|\[::1\]):9000\?/);
    expect(srt.tcUrl).toBeUndefined();
    expect((await checkedUrl("rtmps://localhost/app/key", anyAddress)).url).toBe("rtmps://localhost/app/key");
    await expect(checkedUrl("rtmp://localhost/app/key", publicAddressesOnly)).rejects.toThrow(/not a public address/);
  });
});
