// How many broadcasts one worker encodes in real time (docs/live.md "Capacity"): the API as operators
// start it, its own worker with WORKER_LIVE_SLOTS set to the most broadcasts asked for, and N
// publishers at once, each sending the same 720p30 H.264 clip in real time (stream copy: the
// publishers cost next to no CPU here, as they would on their own machines). Prints each broadcast's
// encode speed and lag behind the wall clock from its liveStreamEvents.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const USAGE = `usage: npm run bench:live-capacity -- [--broadcasts=1,2,3] [--seconds=S] [--size=WxH] [--fps=F] [--passthrough=on|off]
Starts the API with its worker on a throw-away database and, for each count N of --broadcasts, publishes N
broadcasts at once over RTMP, each S seconds of a WxH F fps clip (keyframes every 2 s) sent in real time,
and prints each broadcast's live encode speed and lag behind the wall clock (first and last third). A
worker keeps up with N when every broadcast's lag does not grow. Defaults: 1,2,3; 60 s; 1280x720; 30 fps;
passthrough on (LIVE_PASSTHROUGH, the worker's default: the top rung copied).`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    broadcasts: { type: "string", default: "1,2,3" },
    seconds: { type: "string", default: "60" },
    size: { type: "string", default: "1280x720" },
    fps: { type: "string", default: "30" },
    passthrough: { type: "string", default: "on" },
  },
});
const counts = String(flags.broadcasts).split(",").map(Number);
const seconds = Number(flags.seconds);
const fps = Number(flags.fps);
const [width, height] = String(flags.size).split("x").map(Number) as [number, number];
if (
  counts.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 64)) ||
  !(seconds >= 20 && seconds <= 3600) ||
  !(fps >= 10 && fps <= 60) ||
  !(width >= 320 && height >= 240 && width <= 3840 && height <= 2160) ||
  !["on", "off"].includes(String(flags.passthrough))
)
  usageError(
    USAGE,
    "--broadcasts 1..64 each, --seconds 20..3600, --fps 10..60, --size 320x240..3840x2160, --passthrough on|off",
  );
const [{ followLiveStream }, { startApiProcess, stopAllProcesses }, { benchDatabase, postGraphQL }] = await Promise.all(
  [import("./support/live-stream-events.ts"), import("../test/support/processes.ts"), import("./support/stack.ts")],
);
/** Reports from the first seconds are left out: the encode is starting. */
const WARM_UP_SECONDS = 5;
const log = (message: string) => process.stderr.write(`${message}\n`);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)]! : Number.NaN;
};
const fmt = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : "n/a");

function ffmpeg(args: string[]): Promise<void> {
  const child = spawn("ffmpeg", ["-hide_banner", "-loglevel", "error", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  return new Promise((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}: ${stderr}`)))),
  );
}

/** One broadcast: its stream, its health reports after the warm-up, and its recording's state at the end. */
async function broadcast(api: string, clip: string, index: number) {
  const created = await postGraphQL(
    api,
    `mutation ($title: String!) { createLiveStream(input: { title: $title }) {
      ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`,
    { title: `bench ${index}` },
  );
  const { streamKey, liveStream } = created.data.createLiveStream;
  const reports: { speed: number; behind: number }[] = [];
  let liveAt = 0;
  const client = followLiveStream(
    api,
    liveStream.id,
    (e) => {
      if (e.status === "LIVE" && !liveAt) liveAt = Date.now();
      const h = e.health;
      if (liveAt && Date.now() - liveAt > WARM_UP_SECONDS * 1000 && h?.speed != null && h.behindSeconds != null)
        reports.push({ speed: h.speed, behind: h.behindSeconds });
    },
    log,
  );
  const url = `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`;
  // A publisher cut off or refused is reported beside the others, not thrown.
  const published = await ffmpeg(["-re", "-i", clip, "-c", "copy", "-f", "flv", url]).then(
    () => "sent",
    (err: Error) => `publisher failed: ${err.message.split("\n")[0]}`,
  );
  const state = async () =>
    (
      await postGraphQL(
        api,
        `query ($id: ID!) { liveStream(id: $id) { status lastError activeVideo { status duration cost { cpuSeconds } } } }`,
        {
          id: liveStream.id,
        },
      )
    ).data.liveStream;
  let end = await state();
  // The encode's measured CPU is recorded on its job as the broadcast ends.
  for (
    const deadline = Date.now() + 120_000;
    !(end.status === "ENDED" && end.activeVideo?.cost?.cpuSeconds != null) && Date.now() < deadline;
    end = await state()
  )
    await new Promise((r) => setTimeout(r, 250));
  await client.dispose();
  const third = Math.max(1, Math.floor(reports.length / 3));
  return {
    reports: reports.length,
    speed: { median: median(reports.map((r) => r.speed)), min: Math.min(...reports.map((r) => r.speed)) },
    behind: {
      firstThird: median(reports.slice(0, third).map((r) => r.behind)),
      lastThird: median(reports.slice(-third).map((r) => r.behind)),
    },
    cpuPerSecond: (end.activeVideo?.cost?.cpuSeconds ?? Number.NaN) / (end.activeVideo?.duration ?? Number.NaN),
    end: `${published}; ${end.status}, ${end.activeVideo?.status ?? "no video"}${end.lastError ? ` (${end.lastError})` : ""}`,
  };
}

const scratch = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-live-capacity-"));
const database = await benchDatabase(path.join(scratch, "postgres"), "videograph_bench_live_capacity", log);
const clip = path.join(scratch, "clip.mp4");
const results: { count: number; load: number; broadcasts: Awaited<ReturnType<typeof broadcast>>[] }[] = [];
try {
  log(`encoding the publishers' clip: ${seconds} s of ${width}x${height} ${fps} fps…`);
  await ffmpeg([
    ...["-f", "lavfi", "-i", `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
    ...["-c:v", "libx264", "-preset", "veryfast", "-g", String(fps * 2), "-pix_fmt", "yuv420p"],
    ...["-c:a", "aac", "-b:a", "128k", clip],
  ]);
  const api = await startApiProcess("api", {
    DATA_DIR: scratch,
    DATABASE_URL: database.url,
    SIGNING_SECRET: randomBytes(24).toString("hex"),
    LOCAL_WORKER: "true",
    LIVE_RTMP_PORT: "0",
    LIVE_SRT_PORT: "off",
    LIVE_PASSTHROUGH: flags.passthrough === "on" ? "true" : "false",
    WORKER_LIVE_SLOTS: String(Math.max(...counts)),
    // Every publisher is one tenant's and comes from 127.0.0.1: the per-tenant and per-source limits
    // (5 streams, 8 connections, 4 handshakes at once) would refuse the bench's own publishers.
    LIVE_MAX_STREAMS_PER_TENANT: String(Math.max(5, ...counts)),
    LIVE_MAX_CONNECTIONS_PER_SOURCE: String(Math.max(8, 2 * Math.max(...counts))),
    LIVE_MAX_HANDSHAKES_PER_SOURCE: String(Math.max(4, ...counts)),
    WORKER_DETECT_MANIM: "false",
  });
  // The worker's first heartbeat: its live slots count from then on.
  await new Promise((r) => setTimeout(r, 3000));
  for (const count of counts) {
    const load = os.loadavg()[0]!;
    log(`${count} broadcast(s) at once, load average ${fmt(load)}…`);
    const broadcasts = await Promise.all(Array.from({ length: count }, (_, i) => broadcast(api.url, clip, i)));
    results.push({ count, load, broadcasts });
  }
} finally {
  await stopAllProcesses();
  await database.drop();
  await rm(scratch, { recursive: true, force: true });
}

const cpu = os.cpus();
console.log(
  `\nnpm run bench:live-capacity — ${new Date().toISOString()}, ${cpu.length} × ${cpu[0]?.model ?? "?"}; ` +
    `${width}x${height} ${fps} fps publishers for ${seconds} s, passthrough ${flags.passthrough}`,
);
for (const { count, load, broadcasts } of results) {
  console.log(`${count} at once (load average ${fmt(load)} before):`);
  for (const [i, b] of broadcasts.entries()) {
    const keepsUp = b.behind.lastThird - b.behind.firstThird <= 1 && b.speed.median >= 0.98;
    console.log(
      `  #${i + 1}: speed median ${fmt(b.speed.median)}×, min ${fmt(b.speed.min)}×; behind (median) first third ` +
        `${fmt(b.behind.firstThird)} s, last third ${fmt(b.behind.lastThird)} s ${keepsUp ? "✔ keeps up" : "✘ falls behind"}; ` +
        `encode ${fmt(b.cpuPerSecond)} CPU-s per second; ${b.reports} reports; ${b.end}`,
    );
  }
}
