import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { familyOf, stillRunning } from "./support/process-scan.ts";
import { watchSegments } from "../bench/support/segment-watch.ts";

// The chaos run (bench/chaos.ts) is too heavy for npm test; what it counts must still be real.
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function storageDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "chaos-measures-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, "videos", "v1", "hls", "360p"), { recursive: true });
  return dir;
}

describe("the chaos run's segment watch", () => {
  it("counts a segment replaced with other bytes, and one written again with the same bytes apart", async () => {
    const dir = await storageDir();
    const segment = (n: number) => path.join(dir, "videos", "v1", "hls", "360p", `seg_0000${n}.ts`);
    await writeFile(segment(0), "first bytes");
    await writeFile(segment(1), "kept bytes");
    await writeFile(path.join(dir, "videos", "v1", "hls", "360p", "index.m3u8"), "#EXTM3U");
    const watch = watchSegments(dir, 50);
    watch.start();
    await new Promise((r) => setTimeout(r, 300));
    // As storage publishes: a temp file renamed over the segment.
    await writeFile(`${segment(0)}.tmp`, "other bytes");
    await rename(`${segment(0)}.tmp`, segment(0));
    await writeFile(`${segment(1)}.tmp`, "kept bytes");
    await rename(`${segment(1)}.tmp`, segment(1));
    await new Promise((r) => setTimeout(r, 300));
    await watch.stop();
    expect(watch.segmentCount()).toBe(2);
    const rewrites = watch.rewrites().map((r) => ({ key: r.key, sameBytes: r.sameBytes }));
    expect(rewrites).toEqual(
      expect.arrayContaining([
        { key: "videos/v1/hls/360p/seg_00000.ts", sameBytes: false },
        { key: "videos/v1/hls/360p/seg_00001.ts", sameBytes: true },
      ]),
    );
    expect(rewrites).toHaveLength(2);
  });

  it("sees nothing when segments are only added", async () => {
    const dir = await storageDir();
    const watch = watchSegments(dir, 50);
    watch.start();
    for (let i = 0; i < 3; i++) {
      // As storage publishes (a temp file renamed into place): a reader never sees a half-written segment.
      const segment = path.join(dir, "videos", "v1", "hls", "360p", `seg_0000${i}.ts`);
      await writeFile(`${segment}.tmp`, `segment ${i}`);
      await rename(`${segment}.tmp`, segment);
      await new Promise((r) => setTimeout(r, 120));
    }
    await watch.stop();
    expect(watch.segmentCount()).toBe(3);
    expect(watch.rewrites()).toEqual([]);
  });
});

describe("the chaos run's process scan", () => {
  it("finds a process's child after the process is killed and the child re-parented", async () => {
    // A shell in its own group that starts a long sleep, as a worker starts ffmpeg.
    const parent = spawn("sh", ["-c", "sleep 30 & wait"], { detached: true, stdio: "ignore" });
    cleanups.push(async () => {
      try {
        process.kill(-parent.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    });
    let children = familyOf(parent.pid!);
    for (let tries = 0; !children.some((p) => p.command === "sleep") && tries < 50; tries++) {
      await new Promise((r) => setTimeout(r, 50));
      children = familyOf(parent.pid!);
    }
    const sleeper = children.find((p) => p.command === "sleep");
    expect(sleeper).toBeDefined();
    process.kill(parent.pid!, "SIGKILL");
    await new Promise((r) => parent.once("exit", r));
    expect(stillRunning(sleeper!)).toBe(true);
    // Re-parented, it is still found through the process group the killed parent led.
    expect(familyOf(parent.pid!).map((p) => p.pid)).toContain(sleeper!.pid);
    process.kill(sleeper!.pid, "SIGKILL");
    for (let tries = 0; stillRunning(sleeper!) && tries < 50; tries++) await new Promise((r) => setTimeout(r, 20));
    expect(stillRunning(sleeper!)).toBe(false);
  });
});
