import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { encodesJobs, familyOf, stillRunning } from "./support/process-scan.ts";
import { packetTimes } from "./support/media-checks.ts";
import { freePort } from "../src/free-port.ts";
import {
  DROP_ALLOWANCE_SECONDS,
  missingSentSeconds,
  playlistDiscontinuities,
  RECORDING_ALLOWANCE_SECONDS,
} from "../bench/support/broadcast-measures.ts";
import {
  connectionEnd,
  type PublisherConnection,
  publishReconnecting,
  REFUSED_BELOW_SECONDS,
} from "../bench/support/reconnecting-publisher.ts";
import { watchSegments } from "../bench/support/segment-watch.ts";
import { type ChaosGates, cancelOverruled, chaosExitCode } from "../bench/support/cancel-verdict.ts";
import { followCancelTarget, type SubscriptionSink } from "../bench/support/cancel-target.ts";

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

/** An RTMP server of ffmpeg's own on `port` that writes what it receives to `file` (the chaos run's API in its place). */
function rtmpReceiver(port: number, file: string) {
  const child = spawn(
    "ffmpeg",
    [
      "-hide_banner",
      "-loglevel",
      "error",
      "-listen",
      "1",
      "-i",
      `rtmp://127.0.0.1:${port}/live/key`,
      "-c",
      "copy",
      "-f",
      "flv",
      file,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  });
  return { child, exited };
}

describe("the chaos run's cancel check", () => {
  it("does not take a live broadcast's ffmpeg beside a canceled job, on the same worker, for the job's", async () => {
    const dir = await storageDir();
    const workDir = path.join(dir, "work");
    await mkdir(path.join(workDir, "videograph-live-job-x1"), { recursive: true });
    const ffmpeg = "exec ffmpeg -hide_banner -loglevel error -re -f lavfi -i sine=duration=30 -f null -";
    // A worker (a shell in its own group) running a live job's encode in that job's temp dir; another
    // running one outside the temp dirs.
    const shellRunningFfmpegIn = (cwd: string) => {
      const shell = spawn("sh", ["-c", `(cd "$1" && ${ffmpeg}) & wait`, "sh", cwd], {
        detached: true,
        stdio: "ignore",
      });
      cleanups.push(async () => {
        try {
          process.kill(-shell.pid!, "SIGKILL");
        } catch {
          // already gone
        }
      });
      return shell;
    };
    const live = shellRunningFfmpegIn(path.join(workDir, "videograph-live-job-x1"));
    const outside = shellRunningFfmpegIn(dir);
    const ffmpegOf = (pid: number) => familyOf(pid).filter((p) => p.command === "ffmpeg");
    for (let tries = 0; (!ffmpegOf(live.pid!).length || !ffmpegOf(outside.pid!).length) && tries < 100; tries++)
      await new Promise((r) => setTimeout(r, 50));
    expect(ffmpegOf(live.pid!)).toHaveLength(1);
    // The canceled upload's job runs nothing on that worker: the live encode beside it is not its.
    expect(encodesJobs(workDir, ["upload-job-y2"], [live.pid!])).toBe(false);
    expect(encodesJobs(workDir, ["live-job-x1"], [live.pid!])).toBe(true);
    expect(encodesJobs(workDir, ["live-job-x1"], [])).toBe(true);
    // An ffmpeg a runner started outside the temp dirs is counted as the job's, whatever its directory.
    expect(encodesJobs(workDir, ["upload-job-y2"], [outside.pid!])).toBe(true);
  }, 30_000);
});

describe("the chaos run's broadcasts", () => {
  it("a publisher cut off reconnects and sends what is left; what arrived is within the allowance of what it counted", async () => {
    const dir = await storageDir();
    const port = await freePort();
    const first = rtmpReceiver(port, path.join(dir, "first.flv"));
    // Let the first server listen before the publisher connects.
    await new Promise((r) => setTimeout(r, 1000));
    const publisher = publishReconnecting(`rtmp://127.0.0.1:${port}/live/key`, { seconds: 6, retryDelayMs: 300 });
    cleanups.push(async () => publisher.stop());
    await new Promise((r) => setTimeout(r, 3000));
    // The server dies (as the API does under a SIGKILL): the publisher's connection drops.
    first.child.kill("SIGKILL");
    await first.exited;
    const second = rtmpReceiver(port, path.join(dir, "second.flv"));
    await publisher.done;
    await second.exited;
    const [cutOff, ...rest] = publisher.connections;
    expect(cutOff).toMatchObject({ clean: false });
    expect(cutOff!.sentSeconds).toBeGreaterThan(1);
    expect(rest.at(-1)).toMatchObject({ clean: true, exitCode: 0 });
    // Connections refused while no server listened sent nothing.
    expect(rest.slice(0, -1).every((c) => !c.clean && c.sentSeconds === 0)).toBe(true);
    expect(publisher.drops()).toBe(1);
    expect(publisher.refusals()).toBe(rest.length - 1);
    expect(publisher.sentWhileConnected()).toBe(publisher.sentSeconds());
    expect(publisher.gaveUp()).toBe(false);
    expect(publisher.sentSeconds()).toBeGreaterThanOrEqual(6 - 1 / 25);
    expect(publisher.sentSeconds()).toBeLessThan(7);
    // What the servers received holds what the publisher counted, but for what the cut-off connection had in flight.
    const received = async (file: string) => {
      const times = await packetTimes(file).catch(() => []);
      return times.length ? times.at(-1)! - times[0]! : 0;
    };
    const total = (await received(path.join(dir, "first.flv"))) + (await received(path.join(dir, "second.flv")));
    expect(missingSentSeconds({ sentSeconds: publisher.sentWhileConnected(), recordedSeconds: total, drops: 1 })).toBe(
      0,
    );
  }, 40_000);

  it("a publisher that finds no server gives up after its patience, having sent nothing", async () => {
    const port = await freePort();
    const publisher = publishReconnecting(`rtmp://127.0.0.1:${port}/live/key`, {
      seconds: 5,
      retryDelayMs: 200,
      giveUpAfterMs: 1500,
    });
    await publisher.done;
    expect(publisher.gaveUp()).toBe(true);
    expect(publisher.connections.length).toBeGreaterThan(1);
    expect(publisher.sentSeconds()).toBe(0);
    expect(publisher.drops()).toBe(0);
  }, 30_000);

  it("tells a connection refused after its first frames from one taken and cut off", () => {
    const connection = (sentSeconds: number, clean: boolean): PublisherConnection => ({
      at: 0,
      sentSeconds,
      exitCode: clean ? 0 : 1,
      clean,
    });
    expect(connectionEnd(connection(0, false))).toBe("refused");
    // The API refuses after the publish command and the metadata: ffmpeg has encoded a few frames.
    expect(connectionEnd(connection(0.2, false))).toBe("refused");
    expect(connectionEnd(connection(REFUSED_BELOW_SECONDS, false))).toBe("dropped");
    // A last connection sending only what was left ends on its input's end, however short.
    expect(connectionEnd(connection(0.2, true))).toBe("clean");
  });

  it("counts seconds missing beyond the allowances, and each connection cut off adds its own", () => {
    const allowed = RECORDING_ALLOWANCE_SECONDS + 2 * DROP_ALLOWANCE_SECONDS;
    expect(missingSentSeconds({ sentSeconds: 60, recordedSeconds: 60 - allowed, drops: 2 })).toBe(0);
    expect(missingSentSeconds({ sentSeconds: 60, recordedSeconds: 60 - allowed - 1.5, drops: 2 })).toBe(1.5);
    expect(missingSentSeconds({ sentSeconds: 60, recordedSeconds: 60 - allowed - 1.5, drops: 3 })).toBe(0);
    // No recording at all: everything sent beyond the allowance is missing.
    expect(missingSentSeconds({ sentSeconds: 30, recordedSeconds: null, drops: 0 })).toBe(
      30 - RECORDING_ALLOWANCE_SECONDS,
    );
  });

  it("counts a recording's discontinuities, not its discontinuity sequence", () => {
    const playlist = [
      "#EXTM3U",
      "#EXT-X-VERSION:3",
      "#EXT-X-TARGETDURATION:2",
      "#EXT-X-MEDIA-SEQUENCE:0",
      "#EXT-X-DISCONTINUITY-SEQUENCE:4",
      "#EXTINF:2.000000,",
      "seg_00000.ts",
      "#EXT-X-DISCONTINUITY",
      "#EXTINF:2.000000,",
      "seg_00003.ts",
      "#EXTINF:2.000000,",
      "seg_00004.ts",
      "#EXT-X-DISCONTINUITY",
      "#EXTINF:1.500000,",
      "seg_00007.ts",
      "#EXT-X-ENDLIST",
      "",
    ].join("\n");
    expect(playlistDiscontinuities(playlist)).toBe(2);
    expect(playlistDiscontinuities(playlist.replaceAll("#EXT-X-DISCONTINUITY\n", ""))).toBe(0);
  });
});

describe("the chaos run's cancel target", () => {
  /** A stand-in for the API's videoEvents: each subscription gets the next script, run on its sink. */
  function scriptedSubscriptions(scripts: ((sink: SubscriptionSink) => void)[]) {
    let made = 0;
    const subscribe = (sink: SubscriptionSink) => {
      const script = scripts[made++];
      setTimeout(() => script?.(sink), 0);
      return () => {};
    };
    return { subscribe, made: () => made };
  }
  const progress = (value: number) => ({
    data: { videoEvents: { video: { status: "PROCESSING" }, variant: { status: "ENCODING", progress: value } } },
  });
  const ended = (sink: SubscriptionSink) => {
    sink.next({ data: { videoEvents: { video: { status: "READY" } } } });
    sink.complete();
  };

  it(`subscribes again after a subscription fails (an API restarting with its database down), so the cancel \
still lands near completion`, async () => {
    const api = scriptedSubscriptions([
      (sink) => {
        sink.next(progress(0.3));
        sink.error(new Error("Unexpected error."));
      },
      (sink) => sink.next(progress(0.7)),
    ]);
    const seen: string[] = [];
    followCancelTarget(
      api.subscribe,
      { status: () => {}, nearCompletion: () => seen.push("cancel"), endedFirst: () => seen.push("ended") },
      () => true,
      10,
    );
    await expect.poll(() => seen, { timeout: 2000 }).toEqual(["cancel"]);
    expect(api.made()).toBe(2);
  });

  it("a video that ended while its subscription was down is moved on, as is a failure once the run stops trying", async () => {
    const seen: string[] = [];
    const handlers = {
      status: (s: string) => seen.push(s),
      nearCompletion: () => seen.push("cancel"),
      endedFirst: () => seen.push("ended"),
    };
    const api = scriptedSubscriptions([(sink) => sink.error(new Error("closed")), ended]);
    followCancelTarget(api.subscribe, handlers, () => true, 10);
    await expect.poll(() => seen, { timeout: 2000 }).toEqual(["READY", "ended"]);

    seen.length = 0;
    const stopped = scriptedSubscriptions([(sink) => sink.error(new Error("closed"))]);
    followCancelTarget(stopped.subscribe, handlers, () => false, 10);
    await expect.poll(() => seen, { timeout: 2000 }).toEqual(["ended"]);
    expect(stopped.made()).toBe(1);
  });
});

describe("the chaos run's verdict on a cancel", () => {
  const job = (id: string, kind: string, status: string) => ({ id, kind, status });

  it(`a split transcode whose first part succeeded just before the cancel landed was not overruled; a whole \
transcode or a render that succeeded was`, () => {
    // A split transcode canceled while its first run and a chunk ran: the first run's part had succeeded.
    const split = [
      job("first", "TRANSCODE", "SUCCEEDED"),
      job("c1", "TRANSCODE_CHUNK", "CANCELED"),
      job("c2", "TRANSCODE_CHUNK", "SUCCEEDED"),
    ];
    expect(cancelOverruled(split, ["first", "c1", "c2"])).toBe(false);
    // A transcode of one run: its success is the video's.
    expect(cancelOverruled([job("t", "TRANSCODE", "SUCCEEDED")], ["t"])).toBe(true);
    expect(cancelOverruled([job("t", "TRANSCODE", "CANCELED")], ["t"])).toBe(false);
    // A render that produced its source went on: overruled, split or not.
    expect(cancelOverruled([job("r", "RENDER_MANIM", "SUCCEEDED"), ...split], ["r"])).toBe(true);
    // A job that had succeeded before the cancel was sent is not the cancel's business.
    expect(cancelOverruled([job("t", "TRANSCODE", "SUCCEEDED")], [])).toBe(false);
  });
});

describe("the chaos run's exit code", () => {
  const clean: ChaosGates = {
    failedVideos: 0,
    lostVideos: 0,
    stuckVideos: 0,
    rewrittenSegments: 0,
    cancelsNotHonoured: 0,
    failedAfterFailingGpu: 0,
    processesNeedingHuman: 0,
    faultsNotInjected: 0,
    webhookFairnessBroken: 0,
    broadcastFailures: 0,
    broadcastSecondsMissing: 0,
    unplannedExits: 0,
  };

  it("is 0 only when every gate is 0: a FAILED video no fault set out to fail, alone, fails the run", () => {
    expect(chaosExitCode(clean)).toBe(0);
    // Before, a FAILED video was printed and the run still exited 0 (#67 item 9).
    expect(chaosExitCode({ ...clean, failedVideos: 1 })).toBe(1);
    for (const gate of Object.keys(clean) as (keyof ChaosGates)[]) {
      expect(chaosExitCode({ ...clean, [gate]: 1 }), gate).toBe(1);
    }
    expect(chaosExitCode({ ...clean, broadcastSecondsMissing: 0.4 })).toBe(1);
  });
});
