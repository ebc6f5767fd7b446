import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gqlAt } from "./support/app.ts";
import { alivePids, descendantPids, listProcesses } from "./support/process-scan.ts";
import { type ServiceProcess, startApiProcess, stopAllProcesses } from "./support/processes.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql, operationText } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

// Not createUpload (support/uploads.ts): sent with the key the start printed, and its whole answer read.
const CREATE_UPLOAD = graphql(`mutation { createUpload(input: { title: "x" }) { __typename } }`);
const RUNS = graphql(
  `query($id: ID!) { video(id: $id) { status jobs { edges { node { kind runs { status finishedAt } } } } } }`,
);

/**
 * `npm start` with nothing configured: the entry file starts an embedded Postgres, applies
 * migrations, serves, runs a local worker, and stops cleanly on SIGTERM.
 *
 * The tests start one after another on one data dir, as `npm start` is run again and again: only
 * the first start initialises Postgres and applies the migrations (about 2.3 CPU-s a start), and the
 * API that ends the resume test is the one the last test kills.
 */
describe("npm start with no configuration", () => {
  let dataDir: string;
  /** The API the resume test started last, still running, with its SRT ingest: the last test kills it. */
  let resumedApi: (ServiceProcess & { url: string }) | undefined;
  const env = () => ({ DATA_DIR: dataDir, DATABASE_URL: undefined, LOCAL_WORKER: "true" });
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-start-"));
    // As root (CI), the embedded Postgres runs as the "postgres" user, which must reach the data dir.
    await chmod(dataDir, 0o755);
  });
  afterAll(async () => {
    await stopAllProcesses();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  /** Resolves once the ladder's encode of `videoId` runs under `api`: it has published a first segment. */
  async function encodingUnder(api: ServiceProcess, videoId: string): Promise<() => boolean> {
    const ffmpegRunning = () =>
      listProcesses().some((p) => p.command === "ffmpeg" && descendantPids(api.child.pid!).includes(p.pid));
    // This video's segments only: the data dir holds those of the videos earlier tests encoded.
    const encoding = async () =>
      (await readdir(path.join(dataDir, "videos", videoId), { recursive: true }).catch(() => [])).some((f) =>
        /seg_\d+\.(ts|m4s)$/.test(String(f)),
      ) && ffmpegRunning();
    for (let i = 0; i < 300 && !(await encoding()); i++) await new Promise((r) => setTimeout(r, 100));
    return ffmpegRunning;
  }

  it("serves GraphQL on an embedded Postgres and exits 0 on SIGTERM", async () => {
    const api = await startApiProcess("api", {
      ...env(),
      BOOTSTRAP_API_KEY: undefined,
    });
    expect(api.log()).toContain("embedded Postgres started");
    // The first start of an empty database creates an admin key and prints it, once.
    const printed = (await api.waitForLog(
      /shown once, keep it:\s+export VIDEOGRAPH_KEY=(vg_[\w-]+)/,
    )) as RegExpMatchArray;
    const key = printed[1]!;

    const health = await fetch(`${api.url}/health`);
    expect(await health.json()).toEqual({ status: "ok" });
    const res = await fetch(`${api.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: operationText(CREATE_UPLOAD) }),
    });
    expect(await res.json()).toEqual({ data: { createUpload: { __typename: "CreateUploadSuccess" } } });

    // The local worker is up once it has announced itself.
    await api.waitForLog('"message":"worker ready"', 30_000);

    expect(await api.stop("SIGTERM")).toBe(0);
    expect(api.log()).toContain('"message":"stopped"');
  });

  it(`stops in order on a terminal's Ctrl-C (SIGINT to the whole process group), with no errors and nothing \
left running`, async () => {
    const api = await startApiProcess(
      "api-ctrl-c",
      // With its SRT ingest: the gateway (a process of its own) is stopped by the API, not by the Ctrl-C.
      { ...env(), LIVE_SRT_PORT: "0" },
      { ownProcessGroup: true },
    );
    await api.waitForLog('"message":"worker ready"', 30_000);
    // The embedded Postgres (its host process, the postmaster and its backends), the worker and the SRT gateway.
    const descendants = descendantPids(api.child.pid!);
    expect(descendants.length).toBeGreaterThanOrEqual(4);
    expect(listProcesses().some((p) => p.command === "srt-gateway" && descendants.includes(p.pid))).toBe(true);

    expect(await api.interruptGroup()).toBe(0);
    const log = api.log();
    const order = [
      '"message":"SIGINT: shutting down"',
      '"message":"stopping: WebSocket subscriptions (close 1001, going away)"',
      '"message":"SIGTERM: shutting down"',
      '"message":"shutdown: done"',
      '"message":"stopping: HTTP connections"',
      '"message":"stopping: database"',
      '"message":"stopped"',
      '"message":"stopping: embedded Postgres"',
      '"message":"embedded Postgres stopped"',
    ];
    const positions = order.map((line) => log.indexOf(line));
    expect(
      positions.every((p) => p >= 0),
      log,
    ).toBe(true);
    expect(positions, log).toEqual([...positions].sort((a, b) => a - b));
    // The worker is signalled once, by the API: a second signal would force it.
    expect(log.match(/"component":"worker"[^\n]*"message":"SIG\w+: shutting down"/g)).toHaveLength(1);
    expect(log).not.toContain("second signal");
    expect(log).not.toMatch(/"severity":"ERROR"/);
    expect(log).not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/);
    // The API resolves only once Postgres has stopped; give the kernel a moment to reap.
    for (let i = 0; i < 50 && alivePids(descendants).length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(alivePids(descendants)).toEqual([]);
  });

  it(`a Ctrl-C mid-encode says what it waits for; a second Ctrl-C hands the job back at once, everything stops, and \
the job resumes on the next start`, async () => {
    const api = await startApiProcess("api-ctrl-c-twice", env(), { ownProcessGroup: true });
    await api.waitForLog('"message":"worker ready"', 30_000);
    const clip = await makeClip({ width: 640, height: 360, seconds: 30, audio: true });
    const { uploadUrl, id: videoId } = await createUpload(api.url, "busy");
    expect((await fetch(`${api.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    const ffmpegRunning = await encodingUnder(api, videoId);
    expect(ffmpegRunning()).toBe(true);
    const descendants = descendantPids(api.child.pid!);
    const exited = new Promise<number | null>((resolve) => api.child.once("exit", (code) => resolve(code)));

    // The first Ctrl-C: the worker's grace (30 s) would run; the terminal is told so, and what a second one does.
    process.kill(-api.child.pid!, "SIGINT");
    await api.waitForLog(
      /"message":"stopping: the local worker finishes its jobs in flight[^"]*Ctrl-C again hands them back now/,
    );
    await api.waitForLog(/"component":"worker"[^\n]*"message":"SIGTERM: shutting down"/);
    expect(ffmpegRunning()).toBe(true);
    const secondAt = Date.now();
    process.kill(-api.child.pid!, "SIGINT");
    expect(await exited).toBe(0);
    for (let i = 0; i < 100 && alivePids(descendants).length; i++) await new Promise((r) => setTimeout(r, 100));
    const stoppedAt = new Date();
    expect(alivePids(descendants)).toEqual([]);
    // Well inside the 30 s grace the first Ctrl-C would have waited.
    expect(Date.now() - secondAt).toBeLessThan(15_000);
    const log = api.log();
    expect(log).toContain(
      '"message":"SIGINT again: the local worker hands its jobs back now; they resume on the next start"',
    );
    expect(log).toContain('"message":"shutdown: asked to stop now, handing jobs back"');
    expect(log).toContain('"message":"embedded Postgres stopped"');
    expect(log).not.toMatch(/"severity":"ERROR"/);

    // The next start: the job was handed back before the stop (its run ended then, not when this start
    // found it stalled), and a new run takes it on (resuming from what the first published, if it got that far).
    // With its SRT ingest: the last test kills this API.
    const again = await startApiProcess("api-after-ctrl-c-twice", { ...env(), LIVE_SRT_PORT: "0" });
    const runsOf = async () => (await gqlAt(again.url, RUNS, { id: videoId })).video!;
    let state = await runsOf();
    for (let i = 0; i < 1200 && state.status !== "READY"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = await runsOf();
    }
    expect(state.status).toBe("READY");
    const runs = state.jobs.edges.find((e) => e.node.kind === "TRANSCODE")!.node.runs;
    expect(runs.map((r) => r.status)).toEqual(["ABANDONED", "SUCCEEDED"]);
    expect(new Date(runs[0]!.finishedAt!).getTime()).toBeLessThanOrEqual(stoppedAt.getTime());
    resumedApi = again;
  });

  it("when the API process is killed outright mid-encode, its worker, ffmpeg and embedded Postgres stop within \
seconds", async () => {
    // The API the resume test left running (it has its SRT gateway: that ends when its stdin, the API,
    // is gone); a start of its own where that test did not run or failed.
    const api = resumedApi ?? (await startApiProcess("api-killed", { ...env(), LIVE_SRT_PORT: "0" }));
    await api.waitForLog('"message":"worker ready"', 30_000);
    // Busy: a job in flight is what a shutdown waits on (its grace, then events it cannot send).
    const clip = await makeClip({ width: 640, height: 360, seconds: 60, audio: true });
    const { uploadUrl, id: videoId } = await createUpload(api.url, "busy");
    expect((await fetch(`${api.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    // The ladder's encode, not a short check before it: it has published a first segment.
    const ffmpegRunning = await encodingUnder(api, videoId);
    expect(ffmpegRunning()).toBe(true);
    const descendants = descendantPids(api.child.pid!);
    expect(descendants.length).toBeGreaterThanOrEqual(5);
    expect(listProcesses().some((p) => p.command === "srt-gateway" && descendants.includes(p.pid))).toBe(true);

    // They run in process groups of their own, so nothing but the closed IPC channel tells them.
    await api.stop("SIGKILL");
    const killedAt = Date.now();
    while (alivePids(descendants).length && Date.now() - killedAt < 30_000)
      await new Promise((r) => setTimeout(r, 100));
    const goneAfterMs = Date.now() - killedAt;
    const left = alivePids(descendants);
    for (const pid of left) process.kill(pid, "SIGKILL");
    expect(left).toEqual([]);
    expect(goneAfterMs).toBeLessThan(8000);
    expect(api.log()).toContain('"message":"API process gone: shutting down"');
    expect(api.log()).toContain('"message":"embedded Postgres stopped"');
  });
});
