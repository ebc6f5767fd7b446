// Live streams from outside (docs/live.md, docs/performance.md "Live streams"): the API as operators
// start it (its own process, with its worker), a real publisher (ffmpeg pushing a 720p30 test pattern
// over RTMP in real time, the time since its start burnt into every frame as a row of black and white
// blocks), and the console's watch page playing the broadcast in Chromium with hls.js. Each sample
// reads the blocks of the frame the player shows: glass-to-glass latency is when it was read minus
// when the publisher captured it. Beside it: the live encode's speed and lag from liveStreamEvents,
// and the time from the publisher's end to the recording's READY.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const USAGE = `usage: npm run bench:live -- [--seconds=S] [--modes=standard,low] [--size=WxH] [--fps=F] [--floor=on|off] [--passthrough=on|off|both] [--ingest=rtmp|srt|both] [--join-after=S]
Starts the API with its worker on a throw-away database and, for each latency mode, publishes S seconds
of a WxH F fps test pattern over RTMP (ffmpeg, real time, the time burnt into each frame), plays the
broadcast in the watch page (Chromium, hls.js) and prints glass-to-glass latency, the live encode's
speed and lag, and how long after the publisher's end the recording was READY. After each mode, the
floor: the same publisher through ffmpeg's own HLS muxer, played by plain hls.js, for as long
(--floor=off skips it: the run takes half as long, and the latency has nothing beside it).
--passthrough=on sets LIVE_PASSTHROUGH=true: the publisher sends a keyframe every 2 s, so STANDARD's
top rung is then its own video, copied (docs/live.md "The top rung copied"; the default, as the
worker's); off encodes every rung; both runs each mode both ways, one after the other. The
encode's CPU is printed beside each.
--ingest=srt publishes MPEG-TS over SRT instead (docs/live.md "SRT"; needs npm run setup:srt); both
runs each mode over RTMP, then over SRT.
--join-after=S: the viewer opens the watch page S seconds after the broadcast went live (default 0,
as it goes live). hls.js starts a viewer two segments behind the live edge and only ever speeds up
to get closer, so a viewer who joins as the broadcast starts keeps how late its first segment was.
Defaults: 60 s, both modes, 1280x720, 30 fps, the floor on, passthrough on, RTMP. The issue's goal: 600 s.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    seconds: { type: "string", default: "60" },
    modes: { type: "string", default: "standard,low" },
    size: { type: "string", default: "1280x720" },
    fps: { type: "string", default: "30" },
    floor: { type: "string", default: "on" },
    passthrough: { type: "string", default: "on" },
    ingest: { type: "string", default: "rtmp" },
    "join-after": { type: "string", default: "0" },
  },
});
if (!["rtmp", "srt", "both"].includes(String(flags.ingest))) usageError(USAGE, "--ingest is rtmp, srt or both");
const ingests: ("rtmp" | "srt")[] = flags.ingest === "both" ? ["rtmp", "srt"] : [flags.ingest as "rtmp" | "srt"];
if (flags.floor !== "on" && flags.floor !== "off") usageError(USAGE, "--floor is on or off");
if (!["on", "off", "both"].includes(String(flags.passthrough))) usageError(USAGE, "--passthrough is on, off or both");
const passthroughSettings = flags.passthrough === "both" ? ["on", "off"] : [String(flags.passthrough)];
// The bench's machinery is imported once the command line is read: --help needs none of it.
const [
  { followLiveStream },
  { launchChromium },
  { startApiProcess, stopAllProcesses },
  { benchDatabase, postGraphQL },
] = await Promise.all([
  import("./support/live-stream-events.ts"),
  import("../test/support/console.ts"),
  import("../test/support/processes.ts"),
  import("./support/stack.ts"),
]);
/** Samples from the first seconds of playback are left out: the player is still finding the live edge. */
const WARM_UP_SECONDS = 10;
const seconds = Number(flags.seconds);
const joinAfter = Number(flags["join-after"]);
const fps = Number(flags.fps);
const [width, height] = String(flags.size).split("x").map(Number) as [number, number];
const modes = String(flags.modes)
  .split(",")
  .map((m) => m.trim().toUpperCase());
if (
  !(seconds >= 20 && seconds <= 7200) ||
  !(joinAfter >= 0 && joinAfter <= seconds - 2 * WARM_UP_SECONDS) ||
  !(fps >= 10 && fps <= 60) ||
  !(width >= 640 && height >= 360 && width <= 3840 && height <= 2160) ||
  modes.some((m) => m !== "STANDARD" && m !== "LOW")
) {
  usageError(
    USAGE,
    "--seconds 20..7200, --join-after 0..seconds-20, --fps 10..60, --size from 640x360 to 3840x2160, --modes standard and/or low",
  );
}

/** The goals: glass-to-glass by mode, encode speed, the recording's READY after the end. */
const GOALS = { latency: { STANDARD: 5, LOW: 3 } as Record<string, number>, readyAfterEndSeconds: 10 };
const BITS = 20;
const BLOCK = 32;
const log = (message: string) => process.stderr.write(`${message}\n`);

interface Sample {
  /** Milliseconds since the publisher's first frame, read from the frame the player showed. */
  frameMs: number;
  /** Date.now() when it was read. */
  at: number;
  height: number;
}
interface Health {
  at: number;
  speed: number | null;
  behindSeconds: number | null;
}

const quantile = (values: number[], q: number) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const fmt = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : "n/a");

/**
 * The publisher: ffmpeg reads a test pattern in real time (`-re`) and writes the frame's time in
 * milliseconds as BITS blocks of BLOCK px across the top-left (bit i white when set), then pushes
 * H.264 + AAC over RTMP (or MPEG-TS over SRT). Its `-progress` lines give when its first frame was captured.
 */
function startPublisher(output: { rtmp: string } | { srt: string } | { hlsDir: string; segmentSeconds: number }) {
  const code = `if(bitand(floor(T*1000),pow(2,floor(X/${BLOCK}))),235,16)`;
  const graph =
    `[0:v]split[a][b];[b]crop=${BITS * BLOCK}:${BLOCK}:0:0,geq=lum='${code}':cb=128:cr=128[code];` +
    "[a][code]overlay=0:0[v]";
  const child = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-re"],
      ...["-f", "lavfi", "-i", `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`],
      ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
      ...["-filter_complex", graph, "-map", "[v]", "-map", "1:a"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", String(fps * 2)],
      ...["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"],
      ...("rtmp" in output
        ? ["-f", "flv", output.rtmp]
        : "srt" in output
          ? ["-f", "mpegts", output.srt]
          : [
              ...["-force_key_frames", `expr:gte(t,n_forced*${output.segmentSeconds})`],
              ...["-f", "hls", "-hls_time", String(output.segmentSeconds), "-hls_list_size", "0"],
              ...["-hls_flags", "independent_segments", path.join(output.hlsDir, "index.m3u8")],
            ]),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  // The first frame's capture time: -re sends no frame before its time, so the earliest of
  // (wall clock - media time written) over the progress lines is when the pattern started.
  let epoch = Number.POSITIVE_INFINITY;
  let buffered = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith("out_time_us=")) {
        const us = Number(line.slice("out_time_us=".length));
        if (Number.isFinite(us) && us > 0) epoch = Math.min(epoch, Date.now() - us / 1000);
      }
      newline = buffered.indexOf("\n");
    }
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on("exit", (code) => resolve({ code, at: Date.now() })),
  );
  return { epoch: () => epoch, exited, stderr: () => stderr, kill: () => child.kill("SIGKILL") };
}

async function runMode(
  api: string,
  browser: Awaited<ReturnType<typeof launchChromium>>,
  mode: string,
  passthrough: string,
  over: "rtmp" | "srt",
) {
  const created = await postGraphQL(
    api,
    `mutation ($mode: LiveLatencyMode) { createLiveStream(input: { title: "bench", latencyMode: $mode }) {
      ... on LiveStreamWithKey { streamKey srtUrl liveStream { id ingestUrl } } } }`,
    { mode },
  );
  const { streamKey, srtUrl, liveStream } = created.data.createLiveStream;
  const loopback = (url: string | null) => {
    if (!url) throw new Error("the API runs no SRT ingest: build its gateway with npm run setup:srt");
    return url.replace("localhost", "127.0.0.1");
  };
  const health: Health[] = [];
  const statuses: { status: string; at: number }[] = [];
  const client = followLiveStream(
    api,
    liveStream.id,
    (e) => {
      if (statuses.at(-1)?.status !== e.status) statuses.push({ status: e.status, at: Date.now() });
      if (e.health) health.push({ at: Date.now(), ...e.health });
    },
    log,
  );
  const publisher = startPublisher(
    over === "srt" ? { srt: loopback(srtUrl) } : { rtmp: `${loopback(liveStream.ingestUrl)}/${streamKey}` },
  );
  const state = async () =>
    (
      await postGraphQL(api, `query ($id: ID!) { liveStream(id: $id) { status activeVideo { id status duration } } }`, {
        id: liveStream.id,
      })
    ).data.liveStream;
  let live = await state();
  const liveDeadline = Date.now() + 30_000;
  while (live.status !== "LIVE" && Date.now() < liveDeadline) {
    await new Promise((r) => setTimeout(r, 100));
    live = await state();
  }
  if (live.status !== "LIVE") throw new Error(`the broadcast did not go live in 30 s: ${publisher.stderr()}`);
  const goneLiveAfter = (statuses.find((s) => s.status === "LIVE")?.at ?? Date.now()) - publisher.epoch();
  if (joinAfter > 0) await new Promise((r) => setTimeout(r, joinAfter * 1000));

  const { samples, ended } = await watch(browser, `${api}/watch/${live.activeVideo.id}?autoplay=1&muted=1`, publisher);
  let recording = await state();
  const readyDeadline = Date.now() + 120_000;
  while (!(recording.status === "ENDED" && recording.activeVideo.status === "READY") && Date.now() < readyDeadline) {
    await new Promise((r) => setTimeout(r, 100));
    recording = await state();
  }
  const readyAfterEnd = (Date.now() - ended.at) / 1000;
  await client.dispose();
  // The encode's measured CPU, recorded on its job as the broadcast ends.
  let cost: { cpuSeconds: number | null; wallSeconds: number | null } | null = null;
  const costDeadline = Date.now() + 30_000;
  while (!(cost?.cpuSeconds != null) && Date.now() < costDeadline) {
    const res = await postGraphQL(api, `query ($id: ID!) { video(id: $id) { cost { cpuSeconds wallSeconds } } }`, {
      id: live.activeVideo.id,
    });
    cost = res.data?.video?.cost ?? null;
    if (cost?.cpuSeconds == null) await new Promise((r) => setTimeout(r, 250));
  }
  const rungs = await postGraphQL(api, `query ($id: ID!) { video(id: $id) { variants { name codecs } } }`, {
    id: live.activeVideo.id,
  });

  const { latencies, heights } = glassToGlass(samples, publisher.epoch(), goneLiveAfter + joinAfter * 1000);
  const speeds = health.map((h) => h.speed).filter((s): s is number => s !== null);
  const behind = health.map((h) => h.behindSeconds).filter((b): b is number => b !== null);
  const third = Math.max(1, Math.floor(behind.length / 3));
  return {
    mode,
    passthrough,
    over,
    rungs: (rungs.data?.video?.variants ?? []).map((v: { name: string; codecs: string }) => `${v.name} ${v.codecs}`),
    encodeCpuSeconds: cost?.cpuSeconds ?? Number.NaN,
    goneLiveAfter: goneLiveAfter / 1000,
    samples: latencies.length,
    heights,
    latency: summary(latencies),
    // A failed floor is reported beside the pipeline's figures, which it must not take down with it.
    floor:
      flags.floor === "off"
        ? ({ skipped: "--floor=off" } as const)
        : await runFloor(browser, mode).catch((err: Error) => ({ skipped: `failed: ${err.message}` })),
    speed: { min: Math.min(...speeds.slice(2)), median: quantile(speeds, 0.5) },
    behind: {
      firstThird: quantile(behind.slice(0, third), 0.5),
      lastThird: quantile(behind.slice(-third), 0.5),
    },
    recording: { status: recording.activeVideo?.status, duration: recording.activeVideo?.duration, readyAfterEnd },
  };
}

/** Plays `url` in a page until the publisher ends, reading the time burnt into the frame shown every 250 ms. */
async function watch(
  browser: Awaited<ReturnType<typeof launchChromium>>,
  url: string,
  publisher: ReturnType<typeof startPublisher>,
): Promise<{ samples: Sample[]; ended: { code: number | null; at: number } }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const samples: Sample[] = [];
  await page.goto(url);
  const over = () =>
    Promise.race([publisher.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 250))]);
  while (!(await over())) {
    const read = await page
      .evaluate(
        ({ bits, block, sourceWidth }) => {
          const video = document.querySelector("video");
          if (!video || video.readyState < 2 || video.paused || video.videoWidth === 0) return null;
          const canvas = document.createElement("canvas");
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
          ctx.drawImage(video, 0, 0);
          const scale = video.videoWidth / sourceWidth;
          let ms = 0;
          for (let i = 0; i < bits; i++) {
            const x = Math.floor((i * block + block / 2) * scale);
            const [luma] = ctx.getImageData(x, Math.floor((block / 2) * scale), 1, 1).data;
            if ((luma ?? 0) > 128) ms += 2 ** i;
          }
          return { frameMs: ms, at: Date.now(), height: video.videoHeight };
        },
        { bits: BITS, block: BLOCK, sourceWidth: width },
      )
      .catch(() => null);
    if (read) samples.push(read);
  }
  await page.close();
  const ended = await publisher.exited;
  if (ended.code !== 0) throw new Error(`the publisher failed (${ended.code}): ${publisher.stderr()}`);
  return { samples, ended };
}

/** Latency of each sample read after the warm-up, in seconds; and the heights the player showed. */
/** Latencies read after WARM_UP_SECONDS of playback, which began `joinedAfterMs` after the publisher's first frame. */
function glassToGlass(samples: Sample[], epoch: number, joinedAfterMs: number) {
  const playing = samples.filter((s) => s.at - epoch > Math.max(0, joinedAfterMs) + WARM_UP_SECONDS * 1000);
  return {
    latencies: playing.map((s) => (s.at - epoch - s.frameMs) / 1000).filter((l) => l > -1 && l < 120),
    heights: [...new Set(playing.map((s) => s.height))].join("/"),
  };
}

const summary = (latencies: number[]) => ({
  samples: latencies.length,
  p50: quantile(latencies, 0.5),
  p95: quantile(latencies, 0.95),
  max: Math.max(...latencies),
});

/** The segment length of each mode at the API's defaults (LIVE_SEGMENT_SECONDS, LIVE_LOW_LATENCY_SEGMENT_SECONDS). */
const SEGMENT_SECONDS: Record<string, number> = { STANDARD: 2, LOW: 1 };

/**
 * The floor, in the same run: the same publisher writing one-rendition live HLS with ffmpeg's own
 * muxer straight to a directory (segments of the mode's length), served by a static server and
 * played by plain hls.js: live HLS on this machine without the ingest, the feed, the ladder and
 * the storage.
 */
async function runFloor(browser: Awaited<ReturnType<typeof launchChromium>>, mode: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-live-floor-"));
  const hlsJs = await readFile(fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js")));
  const server = createServer(async (req, res) => {
    const name = (req.url ?? "/").split("?")[0]!.slice(1);
    if (name === "") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end(`<!doctype html><video muted autoplay playsinline></video><script src="/hls.js"></script><script>
const hls = new Hls(); hls.loadSource("/index.m3u8"); hls.attachMedia(document.querySelector("video"));</script>`);
    }
    if (name === "hls.js") return res.writeHead(200, { "content-type": "text/javascript" }).end(hlsJs);
    if (!/^[\w.-]+$/.test(name)) return res.writeHead(404).end();
    const body = await readFile(path.join(dir, name)).catch(() => null);
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { "cache-control": "no-store" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const publisher = startPublisher({ hlsDir: dir, segmentSeconds: SEGMENT_SECONDS[mode]! });
    const playlist = path.join(dir, "index.m3u8");
    const deadline = Date.now() + 30_000;
    while (!(await readFile(playlist, "utf8").catch(() => "")).includes("#EXTINF") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const liveAfter = Date.now() - publisher.epoch();
    const { samples } = await watch(browser, `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, publisher);
    return summary(glassToGlass(samples, publisher.epoch(), liveAfter).latencies);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

const scratch = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-live-"));
const database = await benchDatabase(path.join(scratch, "postgres"), "videograph_bench_live", log);
const results: Awaited<ReturnType<typeof runMode>>[] = [];
const load = os.loadavg()[0]!;
try {
  const browser = await launchChromium("browser");
  try {
    for (const passthrough of passthroughSettings) {
      // Its worker reads LIVE_PASSTHROUGH when it starts: an API (and its worker) per setting.
      const api = await startApiProcess(`api-passthrough-${passthrough}`, {
        DATA_DIR: scratch,
        DATABASE_URL: database.url,
        SIGNING_SECRET: randomBytes(24).toString("hex"),
        LOCAL_WORKER: "true",
        LIVE_RTMP_PORT: "0",
        LIVE_SRT_PORT: ingests.includes("srt") ? "0" : "off",
        LIVE_PASSTHROUGH: passthrough === "on" ? "true" : "false",
        LOG_LEVEL: "info",
      });
      for (const over of ingests) {
        for (const mode of modes) {
          log(
            `${mode}, passthrough ${passthrough}: publishing ${seconds} s of ${width}x${height} ${fps} fps over ${over}…`,
          );
          results.push(await runMode(api.url, browser, mode, passthrough, over));
        }
      }
      await stopAllProcesses();
    }
  } finally {
    await browser.close();
  }
} finally {
  await stopAllProcesses();
  await database.drop();
  await rm(scratch, { recursive: true, force: true });
}

const cpu = os.cpus();
console.log(
  `\nnpm run bench:live — ${new Date().toISOString()}, ${cpu.length} × ${cpu[0]?.model ?? "?"}, load average ${fmt(load)} before the run`,
);
console.log(
  `publisher: ${width}x${height} ${fps} fps for ${seconds} s (ffmpeg, libx264 ultrafast, on the same machine); ` +
    `the viewer joins ${joinAfter} s after the broadcast went live\n`,
);
for (const r of results) {
  const goal = GOALS.latency[r.mode]!;
  console.log(`${r.mode}, passthrough ${r.passthrough} (LIVE_PASSTHROUGH), over ${r.over.toUpperCase()}`);
  console.log(`  rungs: ${r.rungs.join(", ")}`);
  console.log(
    `  encode CPU (the LIVE job's measured run): ${fmt(r.encodeCpuSeconds, 1)} CPU-s, ` +
      `${fmt(r.encodeCpuSeconds / (r.recording.duration ?? Number.NaN))} CPU-s per second of broadcast`,
  );
  console.log(`  live (first segments out) after the first frame: ${fmt(r.goneLiveAfter)} s`);
  console.log(
    `  glass-to-glass latency (${r.latency.samples} frames read after ${WARM_UP_SECONDS} s of playback, heights ${r.heights}): ` +
      `p50 ${fmt(r.latency.p50)} s, p95 ${fmt(r.latency.p95)} s, max ${fmt(r.latency.max)} s   goal ≤ ${goal} s: ${r.latency.p95 <= goal ? "✔" : "✘"} (p95)`,
  );
  console.log(
    `    floor, same run: ffmpeg's own HLS muxer (${SEGMENT_SECONDS[r.mode]} s segments, one rendition) to a directory, plain hls.js: ` +
      ("skipped" in r.floor
        ? `not measured (${r.floor.skipped})`
        : `p50 ${fmt(r.floor.p50)} s, p95 ${fmt(r.floor.p95)} s (${r.floor.samples} frames)`),
  );
  console.log(
    `  live encode speed: min ${fmt(r.speed.min)}×, median ${fmt(r.speed.median)}× (a real-time input caps it at 1×: ` +
      `keeping up shows in the lag below)`,
  );
  console.log(
    `  lag behind the wall clock (median): first third ${fmt(r.behind.firstThird)} s, last third ${fmt(r.behind.lastThird)} s   ` +
      `goal: not growing: ${r.behind.lastThird - r.behind.firstThird <= 1 ? "✔" : "✘"}`,
  );
  console.log(
    `  recording: ${r.recording.status}, ${fmt(r.recording.duration ?? Number.NaN)} s, READY ${fmt(r.recording.readyAfterEnd)} s after the publisher's end   ` +
      `goal ≤ ${GOALS.readyAfterEndSeconds} s: ${r.recording.readyAfterEnd <= GOALS.readyAfterEndSeconds ? "✔" : "✘"}`,
  );
}
console.log(
  "\nFor scale (not measured here): Mux's own guide puts standard HLS glass-to-glass at typically 25–30 s, with its reduced- and low-latency modes below that.",
);
