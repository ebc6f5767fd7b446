import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { pacedFfmpeg } from "./support/paced-ffmpeg.ts";
import { createUpload } from "./support/uploads.ts";

const run = promisify(execFile);

/** The ffmpeg processes `pid` started that encode a ladder (not a probe or a poster). */
async function ladderEncodesOf(pid: number): Promise<number[]> {
  const { stdout } = await run("ps", ["-o", "pid=,args=", "--ppid", String(pid)]).catch(() => ({ stdout: "" }));
  return stdout
    .split("\n")
    .filter((l) => /\bffmpeg\b.*-f (?:hls|segment)\b/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** Running: it exists and is not a zombie waiting for a PID 1 that does not reap. */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

async function waitFor<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Directories named `videograph-{jobId}-…` anywhere up to two levels below `dir`. */
async function jobDirsIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const relative = path.relative(dir, path.join(entry.parentPath, entry.name));
    if (entry.isDirectory() && relative.split(path.sep).length <= 2 && /^videograph-(?!worker-)/.test(entry.name))
      found.push(relative);
  }
  return found;
}

describe("a SIGKILLed worker leaves no debris", () => {
  let db: TestDatabase;
  let dataDir: string;
  let workTmp: string;
  let api: ServiceProcess & { url: string };
  let common: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-debris-data-"));
    workTmp = await mkdtemp(path.join(tmpdir(), "videograph-debris-tmp-"));
    common = {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      SIGNING_SECRET: "a-shared-secret-for-the-debris-test-0",
      HLS_SEGMENT_SECONDS: "2",
      JOB_STALL_SECONDS: "10",
    };
    api = await startApiProcess("api", common);
  });
  afterAll(async () => {
    await stopAllProcesses();
    await db?.drop();
    for (const dir of [dataDir, workTmp]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`its ffmpeg dies with it within 2 s, and the next worker to start removes its temp dirs but not a \
live worker's`, async () => {
    // Encodes that run until the test ends on any machine: a minute's clip (embedded-start's), read at
    // its own rate (test/support/paced-ffmpeg.ts).
    const clip = await makeClip({ width: 640, height: 360, seconds: 60, audio: true });
    const workerEnv = {
      ...common,
      FFMPEG_PATH: await pacedFfmpeg(),
      WORKER_TMP_DIR: workTmp,
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "2",
    };
    const doomed = await startWorkerProcess("worker-doomed", workerEnv);
    const survivor = await startWorkerProcess("worker-survivor", workerEnv);
    for (const title of ["a", "b"]) {
      const { uploadUrl } = await createUpload(api.url, title);
      const res = await fetch(`${api.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) });
      expect(res.status).toBe(200);
    }
    // Each worker (concurrency 1) encodes one video.
    const [doomedEncodes, survivorEncodes] = await Promise.all(
      [doomed, survivor].map((w) =>
        waitFor(`${w.name} to encode`, async () => {
          const pids = await ladderEncodesOf(w.child.pid!);
          return pids.length > 0 && pids;
        }),
      ),
    );
    expect(await jobDirsIn(workTmp)).toHaveLength(2);

    doomed.child.kill("SIGKILL");
    await waitFor(
      "the doomed worker to exit",
      async () => doomed.child.exitCode !== null || doomed.child.signalCode !== null,
      5_000,
    );
    const killedAt = Date.now();
    const leftRunning = await waitFor(
      "the doomed worker's ffmpeg to die",
      async () => {
        const running = (await Promise.all(doomedEncodes!.map(isRunning))).some(Boolean);
        return !running ? "none" : Date.now() - killedAt > 2_000 ? "still running after 2 s" : null;
      },
      10_000,
    );
    expect(leftRunning).toBe("none");
    expect((await Promise.all(survivorEncodes!.map(isRunning))).every(Boolean)).toBe(true);
    // A killed worker runs no `finally`: its job's temp dir is still there.
    const dirs = await jobDirsIn(workTmp);
    expect(dirs).toHaveLength(2);
    const rootOf = async (pid: number) => {
      for (const dir of dirs) {
        const root = dir.split(path.sep)[0]!;
        const owner = JSON.parse(await readFile(path.join(workTmp, root, "owner.json"), "utf8").catch(() => "{}")) as {
          pid?: number;
        };
        if (owner.pid === pid) return { root, jobDir: dir };
      }
      throw new Error(`No temp dir of pid ${pid} in ${JSON.stringify(dirs)}`);
    };
    const doomedDirs = await rootOf(doomed.child.pid!);
    const survivorDirs = await rootOf(survivor.child.pid!);

    await startWorkerProcess("worker-next", workerEnv);
    const left = await jobDirsIn(workTmp);
    expect(left, JSON.stringify(left)).not.toContain(doomedDirs.jobDir);
    expect(await readdir(path.join(workTmp, doomedDirs.root)).catch(() => "gone")).toBe("gone");
    // The survivor's is kept: it is still encoding in it.
    expect(left).toContain(survivorDirs.jobDir);
    expect((await Promise.all(survivorEncodes!.map(isRunning))).every(Boolean)).toBe(true);
  });
});
