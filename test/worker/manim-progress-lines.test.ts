import { describe, expect, it } from "vitest";
import {
  createManimProgressParser,
  readCachedAnimation,
  readProgressBar,
} from "../../render-worker/manim/progress-bars.ts";
import { cpuTimed } from "../support/cpu-timed.ts";

/** As in caption-parsing-time: at most this much of the thread's CPU time per MiB of output. */
const CPU_MS_PER_MIB = 500;
const MIB = 1024 ** 2;

// What the worker read Manim's lines with before the scans; here only as the reference for short lines.
const BAR_PATTERN = /(?:^|\s)(?:Animation (\d+): (.*)|Waiting (\d+)): +(\d{1,3})%\|/;
const CACHED_PATTERN = /Animation (\d+) : Using cached data \(hash : ([\w.-]+)\)/;

/** A small deterministic generator (mulberry32), so a failing line can be found again. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "Animation ",
  "Animation",
  "Waiting ",
  "1",
  "27",
  "1234",
  ": ",
  ":",
  " ",
  "   ",
  "%|",
  "%",
  "|",
  "x",
  "Create(Square)",
  "\t",
  "\u00a0",
  "\u2028",
  "\u3000",
  "\n",
  " : Using cached data (hash : ",
  "ab.c-9_",
  ")",
  "(",
  ":  45%|",
  ": 100%|",
  "█",
];

/** `unit` repeated to fill about 1 MiB after `head`, then `tail`. */
const filled = (head: string, unit: string, tail: string) =>
  head + unit.repeat(Math.floor((MIB - head.length - tail.length) / unit.length)) + tail;

describe("Manim's output is read by linear scans", () => {
  it("the scans read what the pattern read, on 30,000 lines made of a bar's pieces", () => {
    const next = random(67);
    let bars = 0;
    let cached = 0;
    const pick = (options: string[]) => options[Math.floor(next() * options.length)]!;
    const noise = () => Array.from({ length: Math.floor(next() * 4) }, () => pick(PIECES)).join("");
    const number = () => pick(["0", "1", "27", "27", "1", "", "x"]);
    // Most lines are shaped like a bar or a cached-data line, with pieces of noise anywhere.
    const shaped = () =>
      next() < 0.5
        ? `${noise()}${pick(["Animation ", "Waiting ", " Animation ", "\tWaiting "])}${number()}${pick([": ", ": ", ":"])}` +
          `${noise()}${pick([":", ":", ""])}${pick([" ", "   ", " ", ""])}${pick(["5", "45", "100", "1234", ""])}${pick(["%|", "%|", "%"])}${noise()}`
        : `${noise()}Animation ${number()}${pick([" : Using cached data (hash : ", " : Using cached data"])}` +
          `${pick(["ab.c-9_", "ab.c-9_", "", "a b"])}${pick([")", ")", ""])}${noise()}`;
    for (let n = 0; n < 30_000; n++) {
      const line =
        next() < 0.3 ? Array.from({ length: 1 + Math.floor(next() * 14) }, () => pick(PIECES)).join("") : shaped();
      const hit = BAR_PATTERN.exec(line);
      const expected = hit
        ? { index: Number(hit[1] ?? hit[3]), description: hit[2] ?? "Waiting", percent: Number(hit[4]) }
        : null;
      expect(readProgressBar(line), JSON.stringify(line)).toEqual(expected);
      const cachedHit = CACHED_PATTERN.exec(line);
      expect(readCachedAnimation(line), JSON.stringify(line)).toEqual(
        cachedHit ? { index: Number(cachedHit[1]) } : null,
      );
      if (hit) bars++;
      if (cachedHit) cached++;
    }
    // Enough of both kinds that the comparison means something.
    expect(bars).toBeGreaterThan(600);
    expect(cached).toBeGreaterThan(600);
  });

  const hostile: [string, string, Record<string, unknown>][] = [
    ["many “Animation 1: ” and no bar", filled("", " Animation 1: ", "\n"), { animationIndex: null }],
    [
      "many “Animation 1: x” before one bar at the end",
      filled("", " Animation 1: x", ":  5%|\n"),
      { animationIndex: 1, percent: 5 },
    ],
    [
      "many “Animation 1: ” each with a tail of blanks",
      filled("", " Animation 1: :   ", "\n"),
      { animationIndex: null },
    ],
    ["“Waiting 1: ” and a million blanks", filled("Waiting 1: ", " ", "x\n"), { animationIndex: null }],
    ["“Animation 1: ” then colons with blanks", filled("Animation 1: ", ":  ", "7%\n"), { animationIndex: null }],
    [
      "a cached-data line with a hash of a million characters and no “)”",
      filled("Animation 1 : Using cached data (hash : ", "a", "\n"),
      { cachedCount: 0 },
    ],
    [
      "many cached-data lines' starts in one line",
      filled("", "Animation 1 : Using cached data (hash : a.b-c ", "\n"),
      { cachedCount: 0 },
    ],
  ];

  it.each(hostile)("%s: read within the bound", (_what, text, expected) => {
    const parser = createManimProgressParser();
    const { cpuMs } = cpuTimed(() => parser.write("stderr", text));
    expect(cpuMs).toBeLessThan((CPU_MS_PER_MIB * text.length) / MIB);
    expect(parser.snapshot()).toMatchObject(expected);
  });
});
