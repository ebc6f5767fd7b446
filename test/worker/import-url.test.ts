import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ImportUrlJobMessage } from "../../src/protocol/source-messages.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { importUrl, type ImportUrlOptions } from "../../render-worker/handlers/import-url.ts";
import { publicAddressesOnly } from "../../render-worker/net/address-policy.ts";
import { DownloadError, downloadUrl } from "../../render-worker/net/download.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { jobDirsPerTest, makeClip } from "../support/media-fixtures.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { NON_PUBLIC_ADDRESSES, PUBLIC_ADDRESSES } from "../fixtures/non-public-addresses.ts";

const JOB_ID = "0e4a8c2b-6d1f-4a3e-9b5c-7d8e9f0a1b2c";
const VIDEO_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";

let clip: string;
let server: http.Server;
let origin: string;
/** Requests the stand-in server received, by path. */
const received: string[] = [];

beforeAll(async () => {
  clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: true });
  const size = (await stat(clip)).size;
  server = http.createServer((req, res) => {
    received.push(req.url ?? "");
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/clip.mp4") {
      res.writeHead(200, { "content-type": "video/mp4", "content-length": size });
      createReadStream(clip).pipe(res);
    } else if (url.pathname === "/chunked.mp4") {
      // No Content-Length: the size is only known by counting.
      res.writeHead(200, { "content-type": "video/mp4" });
      createReadStream(clip).pipe(res);
    } else if (url.pathname === "/redirect") {
      res.writeHead(302, { location: url.searchParams.get("to") ?? "/" });
      res.end();
    } else if (url.pathname === "/loop") {
      const n = Number(url.searchParams.get("n") ?? 0);
      res.writeHead(301, { location: `/loop?n=${n + 1}` });
      res.end();
    } else if (url.pathname === "/page") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html>not a video</html>");
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const dirs = jobDirsPerTest("import");
beforeEach(() => {
  received.length = 0;
});

function job(fields: Partial<Record<string, unknown>>): ImportUrlJobMessage {
  return ImportUrlJobMessage.parse({
    v: 1,
    type: "import_url",
    jobId: JOB_ID,
    attempt: 1,
    videoId: VIDEO_ID,
    url: `${origin}/clip.mp4`,
    maxBytes: 50_000_000,
    outputKey: `videos/${VIDEO_ID}/source/import`,
    ...fields,
  });
}

async function runImport(message: ImportUrlJobMessage, options?: ImportUrlOptions): Promise<JobEventBody[]> {
  const events: JobEventBody[] = [];
  await importUrl(
    message,
    {
      storage: createLocalWorkerStorage(dirs.dataDir),
      emit: contractCheckedEmit(JOB_ID, events),
      signal: new AbortController().signal,
      workDir: dirs.workDir,
      progressIntervalMs: 50,
    },
    options,
  );
  return events;
}

async function failureOf(promise: Promise<unknown>): Promise<DownloadError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DownloadError);
  return error as DownloadError;
}

/** downloadUrl with the production policy and a resolver that answers `addresses` for every name. */
function downloadResolvingTo(url: string, addresses: string[], maxBytes = 50_000_000) {
  return downloadUrl({
    url,
    outFile: path.join(dirs.workDir, "out"),
    maxBytes,
    policy: publicAddressesOnly,
    signal: new AbortController().signal,
    resolveHost: async () => addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })),
  });
}

describe("import_url", () => {
  it("imports a video from a local server when the test-only setting allows private addresses", async () => {
    const message = job({ allowPrivateAddresses: true });
    const events = await runImport(message);
    expect(await readFile(path.join(dirs.dataDir, message.outputKey))).toEqual(await readFile(clip));
    expect(events.map((e) => e.type)).toEqual(["job.started", "source.ready"]);
    expect(events[1]).toMatchObject({ outputKey: message.outputKey, width: 320, height: 180 });
  });

  it("refuses the same URL by default: the server is on loopback", async () => {
    const error = await failureOf(runImport(job({})));
    expect(error.message).toBe("refused: 127.0.0.1 is a loopback address");
    expect(error.retryable).toBe(false);
    expect(received).toEqual([]);
  });

  it("refuses an IPv4-compatible IPv6 literal of the loopback server, [::7f00:1], before connecting", async () => {
    const error = await failureOf(runImport(job({ url: `http://[::7f00:1]:${new URL(origin).port}/clip.mp4` })));
    expect(error.message).toBe("refused: ::7f00:1 is an IPv4-compatible address");
    expect(error.retryable).toBe(false);
    expect(received).toEqual([]);
  });

  it("refuses a host name that resolves to a loopback address without naming the address (no DNS oracle)", async () => {
    const error = await failureOf(runImport(job({ url: `http://localhost:${new URL(origin).port}/clip.mp4` })));
    expect(error.message).toBe("refused: localhost is not a public address");
    expect(received).toEqual([]);
  });

  it.each(NON_PUBLIC_ADDRESSES)("refuses %s (%s), as a resolved name and as a literal", async (address, words) => {
    const byName = await failureOf(downloadResolvingTo("http://media.example.test/v.mp4", [address]));
    expect(byName.message).toBe("refused: media.example.test is not a public address");
    expect(byName.retryable).toBe(false);
    const literal = address.includes(":") ? `[${address}]` : address;
    const byLiteral = await failureOf(downloadResolvingTo(`http://${literal}/v.mp4`, []));
    expect(byLiteral.message).toMatch(/^refused: \S+ is /);
    expect(byLiteral.message).toContain(words);
  });

  it("refuses a name when any of its addresses is private, not only the first", async () => {
    const error = await failureOf(
      downloadResolvingTo("http://media.example.test/v.mp4", ["93.184.216.34", "10.1.2.3"]),
    );
    expect(error.message).toBe("refused: media.example.test is not a public address");
  });

  it("accepts public addresses and connects to the checked one, whatever the URL's host name", async () => {
    for (const address of PUBLIC_ADDRESSES) expect(publicAddressesOnly(address), address).toBeNull();
    // The policy lets 127.0.0.1 through here, so the pinned connection can be observed: the name
    // resolves (once) to the local server, and the request reaches it with the URL's Host header.
    let lookups = 0;
    const result = await downloadUrl({
      url: `http://videos.example.test:${new URL(origin).port}/clip.mp4`,
      outFile: path.join(dirs.workDir, "out"),
      maxBytes: 50_000_000,
      policy: (a) => (a === "127.0.0.1" ? null : publicAddressesOnly(a)),
      signal: new AbortController().signal,
      resolveHost: async () => {
        lookups++;
        return [{ address: "127.0.0.1", family: 4 }];
      },
    });
    expect(result.bytes).toBe((await stat(clip)).size);
    expect(lookups).toBe(1);
  });

  it("refuses a redirect to a private address before connecting to it", async () => {
    // The server counts as public here; the hop it redirects to is judged by the default rules.
    const policy = (a: string) => (a === "127.0.0.1" ? null : publicAddressesOnly(a));
    for (const target of [
      "http://10.0.0.5/x.mp4",
      "http://169.254.169.254/latest/meta-data/",
      "http://[::ffff:192.168.0.1]/",
    ]) {
      const error = await failureOf(
        downloadUrl({
          url: `${origin}/redirect?to=${encodeURIComponent(target)}`,
          outFile: path.join(dirs.workDir, "out"),
          maxBytes: 1e6,
          policy,
          signal: new AbortController().signal,
        }),
      );
      expect(error.message).toMatch(/^refused: \S+ is a (private|link-local) address$/);
    }
    const toFile = await failureOf(
      downloadUrl({
        url: `${origin}/redirect?to=${encodeURIComponent("file:///etc/passwd")}`,
        outFile: path.join(dirs.workDir, "out"),
        maxBytes: 1e6,
        policy,
        signal: new AbortController().signal,
      }),
    );
    expect(toFile.message).toBe("refused: only http and https URLs can be imported, not file:");
  });

  it("follows up to 5 redirects and refuses the 6th", async () => {
    const error = await failureOf(runImport(job({ url: `${origin}/loop`, allowPrivateAddresses: true })));
    expect(error.message).toBe("refused: more than 5 redirects");
    expect(received).toEqual(["/loop", "/loop?n=1", "/loop?n=2", "/loop?n=3", "/loop?n=4", "/loop?n=5"]);
    const events = await runImport(
      job({ url: `${origin}/redirect?to=${encodeURIComponent("/clip.mp4")}`, allowPrivateAddresses: true }),
    );
    expect(events.at(-1)?.type).toBe("source.ready");
  });

  it("refuses a body over maxBytes, declared in Content-Length or only counted", async () => {
    const size = (await stat(clip)).size;
    const declared = await failureOf(runImport(job({ maxBytes: size - 1, allowPrivateAddresses: true })));
    expect(declared.message).toBe(`too large: more than ${size - 1} bytes`);
    expect(declared.retryable).toBe(false);
    const counted = await failureOf(
      runImport(job({ url: `${origin}/chunked.mp4`, maxBytes: size - 1, allowPrivateAddresses: true })),
    );
    expect(counted.message).toBe(`too large: more than ${size - 1} bytes`);
    const exact = await runImport(job({ url: `${origin}/chunked.mp4`, maxBytes: size, allowPrivateAddresses: true }));
    expect(exact.at(-1)?.type).toBe("source.ready");
  });

  it.each([
    "file:///etc/passwd",
    "ftp://example.com/v.mp4",
    "gopher://example.com:70/1",
    "data:video/mp4;base64,AAAA",
    "javascript:alert(1)",
  ])("refuses the scheme of %s", async (url) => {
    const error = await failureOf(runImport(job({ url, allowPrivateAddresses: true })));
    expect(error.message).toBe(`refused: only http and https URLs can be imported, not ${new URL(url).protocol}`);
    expect(error.retryable).toBe(false);
  });

  it("fails with the HTTP status, retrying only server errors", async () => {
    const error = await failureOf(runImport(job({ url: `${origin}/missing.mp4`, allowPrivateAddresses: true })));
    expect(error.message).toBe("HTTP 404 Not Found");
    expect(error.retryable).toBe(false);
  });

  it("refuses a download that is not a video before it reaches storage", async () => {
    const message = job({ url: `${origin}/page`, allowPrivateAddresses: true });
    const error = (await runImport(message).then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { retryable?: boolean }) | null;
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toMatch(/^The file is not a video ffmpeg can read/);
    expect(error!.retryable).toBe(false);
    await expect(stat(path.join(dirs.dataDir, message.outputKey))).rejects.toThrow(/ENOENT/);
  });

  it("gives up on a server that never answers", async () => {
    const silent = http.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const error = await failureOf(
        downloadUrl({
          url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`,
          outFile: path.join(dirs.workDir, "out"),
          maxBytes: 1e6,
          policy: () => null,
          signal: new AbortController().signal,
          headersTimeoutMs: 300,
        }),
      );
      expect(error.message).toMatch(/^no answer from 127\.0\.0\.1:\d+ within 0\.3 s$/);
      expect(error.retryable).toBe(true);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
