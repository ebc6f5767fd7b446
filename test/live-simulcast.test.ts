import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/free-port.ts";
import { simulcastKeyCipher } from "../src/simulcast/target-keys.ts";
import { addTenantTarget } from "../src/simulcast/targets.ts";
import { startTestApp, type TestApp, collectSubscription } from "./support/app.ts";
import { TEST_ADMIN_KEY, tenantKeySecret } from "./support/auth.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { queryDatabase } from "./support/db.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { createLiveStreamWithKey, streamState, topSegments } from "./support/live-api.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { workersReported } from "./support/live-slots.ts";
import { listProcesses } from "./support/process-scan.ts";
import { waitFor } from "./support/wait-for.ts";

// Simulcast (docs/live.md, "Simulcast"): a broadcast forwarded, copied, to targets on the loopback
// (an ffmpeg RTMP server, an ffmpeg SRT listener), one refusing and one stalling beside them, through
// the public API, a real publisher, the API's own worker and ffprobe on what the receivers got.

const ADD_TARGET = graphql(`
  mutation ($input: AddSimulcastTargetInput!) {
    addSimulcastTarget(input: $input) {
      __typename
      ... on SimulcastTarget { id name url streamKey state lastError }
      ... on ValidationError { field message }
      ... on NotFoundError { message }
    }
  }`);
const REMOVE_TARGET = graphql(`
  mutation ($id: ID!) {
    removeSimulcastTarget(id: $id) {
      __typename
      ... on RemoveSimulcastTargetSuccess { removedSimulcastTargetId liveStream { simulcastTargets { id } } }
      ... on NotFoundError { message }
    }
  }`);
const TARGETS = graphql(`
  query ($id: ID!) { liveStream(id: $id) { status simulcastTargets { id name url streamKey state lastError } } }`);
const FOLLOW_TARGETS = graphql(`
  subscription ($id: ID!) {
    liveStreamEvents(id: $id) { status liveStream { simulcastTargets { id state lastError } } } }`);

const MAX_TARGETS = 5;

let t: TestApp;
let browser: Browser;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
beforeAll(async () => {
  t = await startTestApp({
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      LIVE_SRT_PORT: "off",
      LIVE_SIMULCAST_MAX_TARGETS: String(MAX_TARGETS),
      // Loopback receivers: the switch URL imports use in tests (a tenant's loopback target is refused without it).
      URL_IMPORT_ALLOW_PRIVATE: "true",
    },
    workerEnv: { LIVE_PASSTHROUGH: "true" },
  });
  await workersReported(t);
  await buildConsole();
  browser = await launchChromium();
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await browser?.close();
  await t?.stop();
});
afterEach(killPublishersOnAir);

/** The console's Live page, signed in as the admin key. */
async function livePage(): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${t.url}/live`);
  await page.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  return page;
}

async function addTarget(liveStreamId: string, name: string, url: string, streamKey: string) {
  const res = await t.gql(ADD_TARGET, { input: { liveStreamId, name, url, streamKey } });
  expect(res.errors).toBeUndefined();
  return res.data.addSimulcastTarget;
}

describe("simulcast targets through the API", () => {
  it("keeps a target's stream key sealed and never returns it, and refuses hostile URLs, keys and a target past the bound", async () => {
    const { id } = await createLiveStreamWithKey(t, "Targets");
    const key = "live_secret_key_1234_abcd";
    const added = expectTypename(await addTarget(id, "YouTube", "rtmp://127.0.0.1:1935/live2", key), "SimulcastTarget");
    expect(added).toMatchObject({ name: "YouTube", url: "rtmp://127.0.0.1:1935/live2", state: "IDLE" });
    expect(added.streamKey).toBe("••••abcd");
    // A short key's last characters would be most of it: none are shown.
    const short = expectTypename(await addTarget(id, "Short", "rtmp://127.0.0.1/live", "abcdefgh"), "SimulcastTarget");
    expect(short.streamKey).toBe("••••");
    await t.gql(REMOVE_TARGET, { id: short.id });
    const listed = (await t.gql(TARGETS, { id })).data.liveStream!;
    expect(JSON.stringify(listed)).not.toContain(key);
    // At rest: sealed (AES-256-GCM), the key nowhere in the row.
    const { rows } = await queryDatabase(t.database.url, `SELECT * FROM "SimulcastTarget" WHERE id = $1`, [added.id]);
    expect(JSON.stringify(rows[0])).not.toContain(key);
    expect(rows[0].keyCiphertext).toMatch(/^v1\./);

    const refused = [
      ["ftp://example.com/live", "url"],
      ["http://example.com/live", "url"],
      ["rtmp://user:pass@example.com/live", "url"],
      ["rtmp://example.com/live?x=1", "url"],
      ["srt://example.com:9000?mode=listener", "url"],
      ["srt://example.com", "url"],
      ["rtmp://example.com", "url"],
      [`rtmp://example.com/${"a".repeat(600)}`, "url"],
      ["rtmp://exa%6dple.com/live", "url"],
    ] as const;
    for (const [url, field] of refused) {
      const res = expectTypename(await addTarget(id, "Bad", url, "k"), "ValidationError");
      expect(res.field, url).toBe(field);
    }
    for (const bad of ["", "has space", "x".repeat(257), "new\nline"]) {
      expect(expectTypename(await addTarget(id, "Bad", "rtmp://example.com/live", bad), "ValidationError").field).toBe(
        "streamKey",
      );
    }
    for (let i = 1; i < MAX_TARGETS; i++) await addTarget(id, `T${i}`, "rtmp://127.0.0.1/live", `key${i}xyz`);
    const over = expectTypename(await addTarget(id, "Too many", "rtmp://127.0.0.1/live", "k"), "ValidationError");
    expect(over.message).toContain(`at most ${MAX_TARGETS}`);

    // Another tenant sees neither the stream nor its targets.
    const scopes = ["videos:read", "videos:write"] as const;
    const other = `Bearer ${await tenantKeySecret(t.app.services.db, "simulcast-other", scopes)}`;
    const foreign = await t.gql(
      ADD_TARGET,
      { input: { liveStreamId: id, name: "x", url: "rtmp://h/a", streamKey: "k" } },
      other,
    );
    expect(foreign.data.addSimulcastTarget.__typename).toBe("NotFoundError");
    const foreignRemove = await t.gql(REMOVE_TARGET, { id: added.id }, other);
    expect(foreignRemove.data.removeSimulcastTarget.__typename).toBe("NotFoundError");

    const removed = expectTypename(
      (await t.gql(REMOVE_TARGET, { id: added.id })).data.removeSimulcastTarget,
      "RemoveSimulcastTargetSuccess",
    );
    expect(removed.liveStream.simulcastTargets.map((x) => x.id)).not.toContain(added.id);
  });

  it("refuses a loopback or private target without the test-only switch (URL_IMPORT_ALLOW_PRIVATE)", async () => {
    const { id } = await createLiveStreamWithKey(t, "Private targets");
    const tenantId = (await queryDatabase(t.database.url, `SELECT "tenantId" FROM "LiveStream" WHERE id = $1`, [id]))
      .rows[0].tenantId;
    const settings = { cipherKey: simulcastKeyCipher("s"), maxTargets: 5, allowPrivateAddresses: false };
    for (const url of ["rtmp://127.0.0.1/live", "srt://10.0.0.1:9000", "rtmps://[::1]/app", "rtmp://localhost/live"]) {
      await expect(
        addTenantTarget(t.app.services.db, settings, tenantId, id, { name: "x", url, streamKey: "k" }),
        url,
      ).rejects.toThrow(/not a public address/);
    }
  });
});

/** An ffmpeg RTMP server on the loopback taking one publisher, copying what it gets into `file`. */
function rtmpReceiver(port: number, key: string, file: string): ChildProcess {
  return spawn(
    "ffmpeg",
    ["-v", "error", "-listen", "1", "-f", "flv", "-i", `rtmp://127.0.0.1:${port}/app/${key}`, "-c", "copy", "-y", file],
    { stdio: "ignore" },
  );
}

/** An ffmpeg SRT listener on the loopback copying what it gets into `file` (MPEG-TS). */
function srtReceiver(port: number, file: string): ChildProcess {
  return spawn(
    "ffmpeg",
    ["-v", "error", "-i", `srt://127.0.0.1:${port}?mode=listener`, "-c", "copy", "-f", "mpegts", "-y", file],
    { stdio: "ignore" },
  );
}

/** A TCP server that accepts and never reads or answers: a target that stalls. */
async function stallingServer(port: number): Promise<{ server: Server; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    socket.pause();
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, sockets };
}

/**
 * An RTMPS receiver on the loopback: a TLS server (a self-signed certificate made by openssl) in
 * front of an RTMP receiver's port, each connection piped to it.
 */
async function tlsFront(port: number, backPort: number, dir: string): Promise<Server> {
  const key = path.join(dir, "key.pem");
  const cert = path.join(dir, "cert.pem");
  await promisify(execFile)("openssl", [
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert],
    ...["-days", "1", "-subj", "/CN=localhost"],
  ]);
  const server = createTlsServer({ key: await readFile(key), cert: await readFile(cert) }, (socket) => {
    const back = connect(backPort, "127.0.0.1");
    socket.pipe(back).pipe(socket);
    socket.on("error", () => back.destroy());
    back.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.on("exit", () => resolve()));

interface ProbedStream {
  codec_name: string;
  profile?: string;
  level?: number;
  width?: number;
  height?: number;
  pix_fmt?: string;
  sample_rate?: string;
  channels?: number;
}

async function probeStreams(file: string): Promise<{ streams: ProbedStream[]; duration: number }> {
  const { stdout } = await promisify(execFile)("ffprobe", [
    ...["-v", "error", "-show_streams", "-show_format", "-of", "json", file],
  ]);
  const parsed = JSON.parse(stdout) as { streams: ProbedStream[]; format: { duration: string } };
  return { streams: parsed.streams, duration: Number(parsed.format.duration) };
}

describe("the console's Live page", () => {
  it("adds a target with its key masked, shows its state, and removes it", async () => {
    await createLiveStreamWithKey(t, "Console simulcast");
    const page = await livePage();
    try {
      const card = page.getByRole("article", { name: "Live stream Console simulcast" });
      const targets = card.getByRole("region", { name: "Simulcast targets" });
      await targets.getByLabel("Name").fill("Twitch");
      await targets.getByLabel("Server (rtmp://, rtmps:// or srt://)").fill("rtmp://127.0.0.1/app");
      await targets.getByLabel("Stream key (stored encrypted, never shown again)").fill("live_console_key_wxyz");
      await targets.getByRole("button", { name: "Add target" }).click();
      const row = targets.getByTestId("simulcast-target");
      await expect.poll(() => row.textContent()).toContain("Twitch");
      const text = (await row.textContent())!;
      expect(text).toContain("••••wxyz");
      expect(text).toContain("IDLE");
      expect(await page.content()).not.toContain("live_console_key_wxyz");
      // A hostile URL is refused with its reason.
      await targets.getByLabel("Name").fill("Bad");
      await targets.getByLabel("Server (rtmp://, rtmps:// or srt://)").fill("file:///etc/passwd");
      await targets.getByLabel("Stream key (stored encrypted, never shown again)").fill("k");
      await targets.getByRole("button", { name: "Add target" }).click();
      await expect.poll(() => page.getByRole("alert").textContent()).toContain("rtmp://, rtmps:// or srt://");
      await row.getByRole("button", { name: "Remove" }).click();
      await expect.poll(() => row.count()).toBe(0);
    } finally {
      await page.close();
    }
  });
});

describe("a broadcast forwarded to its targets", () => {
  it("copies the publisher's stream to RTMP, RTMPS and SRT receivers while a refusing and a stalling target retry, forwards to one added on air and again after its ffmpeg is killed, and stops them all at its end", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "vg-simulcast-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const [rtmpPort, srtPort, refusedPort, stallPort, rtmpsPort, rtmpsBackPort] = ports as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const rtmpFile = path.join(dir, "rtmp.flv");
    const srtFile = path.join(dir, "srt.ts");
    const rtmp = rtmpReceiver(rtmpPort, "target_key_rtmp", rtmpFile);
    const srt = srtReceiver(srtPort, srtFile);
    const stall = await stallingServer(stallPort);
    const rtmpsFile = path.join(dir, "rtmps.flv");
    const rtmps = rtmpReceiver(rtmpsBackPort, "target_key_rtmps", rtmpsFile);
    const front = await tlsFront(rtmpsPort, rtmpsBackPort, dir);
    cleanups.push(() => {
      front.close();
      for (const c of [rtmp, srt, rtmps]) c.kill("SIGKILL");
      for (const s of stall.sockets) s.destroy();
      stall.server.close();
    });

    const stream = await createLiveStreamWithKey(t, "Simulcast");
    const ids = {
      rtmp: expectTypename(
        await addTarget(stream.id, "RTMP", `rtmp://127.0.0.1:${rtmpPort}/app`, "target_key_rtmp"),
        "SimulcastTarget",
      ).id,
      rtmps: expectTypename(
        await addTarget(stream.id, "RTMPS", `rtmps://127.0.0.1:${rtmpsPort}/app`, "target_key_rtmps"),
        "SimulcastTarget",
      ).id,
      srt: expectTypename(
        await addTarget(stream.id, "SRT", `srt://127.0.0.1:${srtPort}`, "srt_stream_id"),
        "SimulcastTarget",
      ).id,
      refused: expectTypename(
        await addTarget(stream.id, "Refused", `rtmp://127.0.0.1:${refusedPort}/app`, "refused_key"),
        "SimulcastTarget",
      ).id,
      stalled: expectTypename(
        await addTarget(stream.id, "Stalled", `rtmp://127.0.0.1:${stallPort}/app`, "stalled_key"),
        "SimulcastTarget",
      ).id,
    };
    const client = t.wsClient();
    const followed = collectSubscription(client, FOLLOW_TARGETS, { id: stream.id });
    cleanups.push(() => client.dispose());

    const publisher = publishUntilStopped(`${stream.ingestUrl}/${stream.key}`);
    const targetsOf = async () => (await t.gql(TARGETS, { id: stream.id })).data.liveStream!;
    const stateOf = (s: Awaited<ReturnType<typeof targetsOf>>, id: string) =>
      s.simulcastTargets.find((x) => x.id === id)!;
    // The healthy targets go LIVE; the refused one retries with its reason, the stalled one once the watchdog cuts it.
    const onAir = await waitFor(
      "the targets' states",
      targetsOf,
      (s) =>
        stateOf(s, ids.rtmp).state === "LIVE" &&
        stateOf(s, ids.srt).state === "LIVE" &&
        stateOf(s, ids.rtmps).state === "LIVE" &&
        stateOf(s, ids.refused).lastError !== null &&
        stateOf(s, ids.stalled).lastError !== null,
      60_000,
    );
    expect(onAir.status).toBe("LIVE");
    expect(stateOf(onAir, ids.refused).lastError).toContain("Connection refused");
    expect(stateOf(onAir, ids.stalled).lastError).toContain("took nothing");
    // No error names a stream key.
    expect(JSON.stringify(onAir)).not.toMatch(/refused_key|stalled_key|target_key_rtmp|srt_stream_id/);

    // The console shows each target's state and last error as the stream's events bring them.
    const page = await livePage();
    try {
      const targets = page
        .getByRole("article", { name: "Live stream Simulcast" })
        .getByRole("region", { name: "Simulcast targets" });
      await expect.poll(() => targets.textContent(), { timeout: 15_000 }).toContain("Connection refused");
      expect(await targets.getByTestId("simulcast-target").first().textContent()).toContain("LIVE");
    } finally {
      await page.close();
    }

    // The broadcast goes on beside them: new segments keep coming while the bad targets retry.
    const videoId = (await streamState(t, stream.id)).activeVideo!.id;
    const before = (await topSegments(t.dataDir, videoId)).length;
    await waitFor(
      "more segments",
      () => topSegments(t.dataDir, videoId),
      (s) => s.length >= before + 4,
      30_000,
    );
    // A target removed on air is let go, and one added on air is forwarded to within seconds.
    const removed = await t.gql(REMOVE_TARGET, { id: ids.refused });
    expect(removed.data.removeSimulcastTarget.__typename).toBe("RemoveSimulcastTargetSuccess");
    const latePort = await freePort();
    const late = rtmpReceiver(latePort, "late_key", path.join(dir, "late.flv"));
    cleanups.push(() => late.kill("SIGKILL"));
    const lateId = expectTypename(
      await addTarget(stream.id, "Late", `rtmp://127.0.0.1:${latePort}/app`, "late_key"),
      "SimulcastTarget",
    ).id;
    await waitFor("the late target LIVE", targetsOf, (s) => stateOf(s, lateId)?.state === "LIVE", 30_000);
    // Its forwarding killed (SIGKILL, as the OOM killer does), it is tried again and LIVE again on a new receiver.
    const forwarder = listProcesses()
      .filter((p) => p.command === "ffmpeg")
      .find((p) => readFileSync(`/proc/${p.pid}/cmdline`, "utf8").includes(`127.0.0.1:${latePort}/app/late_key`));
    expect(forwarder, "the late target's forwarding ffmpeg").toBeDefined();
    process.kill(forwarder!.pid, "SIGKILL");
    await exited(late);
    const againFile = path.join(dir, "again.flv");
    const again = rtmpReceiver(latePort, "late_key", againFile);
    cleanups.push(() => again.kill("SIGKILL"));
    await waitFor("the late target retrying", targetsOf, (s) => stateOf(s, lateId).state !== "LIVE", 15_000);
    await waitFor("the late target LIVE again", targetsOf, (s) => stateOf(s, lateId).state === "LIVE", 30_000);
    const stillOn = await targetsOf();
    expect(stateOf(stillOn, ids.rtmp).state).toBe("LIVE");
    expect(stateOf(stillOn, ids.srt).state).toBe("LIVE");
    expect(stateOf(stillOn, ids.rtmps).state).toBe("LIVE");

    const sent = await publisher.stop();
    const ended = await waitFor("the end", targetsOf, (s) => s.status === "ENDED", 45_000);
    expect(ended.simulcastTargets.map((x) => x.state)).toEqual(["STOPPED", "STOPPED", "STOPPED", "STOPPED", "STOPPED"]);
    await Promise.all([exited(rtmp), exited(srt), exited(rtmps), exited(again)]);
    // (The first receiver was cut off before it wrote anything: ffmpeg probes its input first.)
    expect((await probeStreams(againFile)).streams.map((x) => x.codec_name).sort()).toEqual(["aac", "h264"]);

    // What the receivers got is the publisher's stream copied: the same H.264 (its parameter sets,
    // by their hash) and AAC as the recording's copied top rung, and about as long as was sent.
    const recording = await probeStreams(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"));
    const published = recording.streams.find((s) => s.codec_name === "h264")!;
    for (const file of [rtmpFile, rtmpsFile, srtFile]) {
      const got = await probeStreams(file);
      const video = got.streams.find((s) => s.codec_name === "h264")!;
      const audio = got.streams.find((s) => s.codec_name === "aac")!;
      expect(video, file).toMatchObject({
        width: 320,
        height: 240,
        profile: published.profile,
        level: published.level,
        pix_fmt: published.pix_fmt,
      });
      expect(audio, file).toBeDefined();
      expect(got.duration, file).toBeGreaterThan(sent - 5);
      expect(got.duration, file).toBeLessThan(sent + 2);
    }

    // The stream's events carried each target's states as they changed.
    await client.dispose();
    const seen = (id: string) =>
      new Set(
        followed.events.flatMap((e) =>
          e.liveStreamEvents.liveStream.simulcastTargets.filter((x) => x.id === id).map((x) => x.state),
        ),
      );
    expect([...seen(ids.rtmp)]).toEqual(expect.arrayContaining(["IDLE", "LIVE", "STOPPED"]));
    expect([...seen(ids.stalled)]).toEqual(expect.arrayContaining(["CONNECTING", "RETRYING", "STOPPED"]));
  });
});
