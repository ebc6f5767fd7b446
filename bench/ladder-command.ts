// The worker's exact ladder command for the benches' sources (`npm run bench:ladder-command`),
// written as a bash file for `bench/ladder-cores.sh`, which times it under taskset on a machine with
// more cores than this one (and maybe no Node): PRE (the options before the input) and POST (the
// filter graph and every rung's output), and for each source of bench/support/sources.ts the ffmpeg
// arguments that make it. The ladder command is taken from the worker's own encodeLadder, run on a
// 1 s clip of the same size and rate: FFMPEG_PATH points at a stand-in that records its arguments
// instead of encoding.
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import { BENCH_SOURCE_NAMES, MEZZANINE, sourceCommand } from "./support/sources.ts";

const run = promisify(execFile);

const USAGE = `usage: npm run bench:ladder-command -- [--out=<file>] [--seconds=30] [--height=1080] [--segment-seconds=4]
Writes (to stdout, or --out) bash arrays: PRE and POST, the worker's ladder command for a 16:9 30 fps source
of that height (run it as ffmpeg "\${PRE[@]}" -i <input> "\${POST[@]}" in a directory with one folder per
rung), RUNGS, and SOURCE_<name> for each bench source: the ffmpeg arguments that write --seconds of it, the
output file last. Defaults: 30 s, 1080p, 4 s segments.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    out: { type: "string" },
    seconds: { type: "string", default: "30" },
    height: { type: "string", default: "1080" },
    "segment-seconds": { type: "string", default: "4" },
  },
});
const seconds = Number(flags.seconds);
const height = Number(flags.height);
const segmentSeconds = Number(flags["segment-seconds"]);
if (!(seconds > 0 && segmentSeconds > 0)) usageError(USAGE, "--seconds and --segment-seconds must be positive");
if (!(Number.isInteger(height) && height >= 144 && height <= 2160 && height % 2 === 0))
  usageError(USAGE, "--height must be an even number of lines from 144 to 2160");
const width = 2 * Math.round((height * 16) / 9 / 2);

const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-ladder-command-"));
try {
  const recorded = path.join(dir, "argv.json");
  const standIn = path.join(dir, "ffmpeg");
  // fluent-ffmpeg asks the real ffmpeg for its formats first; only the encode is recorded.
  await writeFile(
    standIn,
    `#!/bin/sh
for a in "$@"; do case "$a" in -formats|-codecs|-encoders|-filters) exec ffmpeg "$@";; esac; done
node -e 'require("fs").writeFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)))' "${recorded}" "$@"
`,
  );
  await chmod(standIn, 0o755);
  process.env.FFMPEG_PATH = standIn;
  // Imported once FFMPEG_PATH is set: the worker's ffmpeg module reads it when loaded.
  const { encodeLadder } = await import("../render-worker/media/encode-ladder.ts");
  const { planLadder } = await import("../render-worker/media/ladder.ts");
  const { probeSource } = await import("../render-worker/media/probe.ts");
  const sample = path.join(dir, "sample.mp4");
  await run("ffmpeg", sourceCommand({ source: "testsrc2", seconds: 1, width, height }, sample));
  const probed = await probeSource(sample);
  // The ladder for a source as long as --seconds: the segment cuts are listed up to its end.
  const probe = { ...probed.probe, duration: seconds };
  const { input } = probed;
  const ladder = planLadder(probe);
  const workDir = path.join(dir, "work");
  await encodeLadder({ input, probe, ladder, workDir, segmentSeconds, signal: new AbortController().signal }).done;
  const argv = JSON.parse(await readFile(recorded, "utf8")) as string[];
  const at = argv.indexOf("-i");
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const sources = BENCH_SOURCE_NAMES.map((name) => {
    const args = sourceCommand({ source: name, seconds, width, height }, `${name}.mp4`);
    return `SOURCE_${name}=(${args.map(quote).join(" ")})\n`;
  });
  const text =
    `# The worker's ladder for a ${width}x${height} 30 fps source of ${seconds} s (${MEZZANINE})\n` +
    `RUNGS=(${ladder.map((r) => quote(r.name)).join(" ")})\n` +
    `PRE=(${argv.slice(0, at).map(quote).join(" ")})\n` +
    `POST=(${argv
      .slice(at + 2)
      .map(quote)
      .join(" ")})\n` +
    `SECONDS_OF_SOURCE=${seconds}\n` +
    sources.join("");
  if (flags.out) await writeFile(flags.out, text);
  else process.stdout.write(text);
} finally {
  await rm(dir, { recursive: true, force: true });
}
