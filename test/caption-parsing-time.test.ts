import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_CAPTION_BYTES, toPublishableWebVtt } from "../src/captions/caption-text.ts";
import { InvalidCaptionsError } from "../src/errors.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import { cpuTimed } from "./support/cpu-timed.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { graphql, operationText } from "./support/graphql.ts";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";
import { createUpload } from "./support/uploads.ts";

const ADD_CAPTION = graphql(`mutation($input: AddCaptionInput!) {
  addCaption(input: $input) { __typename ... on InvalidCaptionsError { message line } } }`);

/**
 * A caption file's parse must cost time in proportion to its size: at most this much of the thread's CPU time
 * per MiB (CPU time, not wall time, so a busy machine does not fail it). A linear parse of 1 MiB takes
 * 10–100 ms here, the backtracking one it replaced minutes on these inputs.
 */
const CPU_MS_PER_MIB = 500;
const SRT_TIMING = "1\n00:00:01,000 --> 00:00:02,000";
const VTT_TIMING = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000";

/** `unit` repeated to fill the rest of a file of just under MAX_CAPTION_BYTES after `head`, then `tail`. */
function filled(head: string, unit: string, tail: string): string {
  const room = MAX_CAPTION_BYTES - 64 - Buffer.byteLength(head + tail);
  return head + unit.repeat(Math.floor(room / Buffer.byteLength(unit))) + tail;
}

/** toPublishableWebVtt on `text`, with the CPU time it took; cut off (failing) past CUT_OFF_MS. */
function parseTimed(text: string): {
  cpuMs: number;
  result: { ok: true; cueCount: number } | { ok: false; error: InvalidCaptionsError };
} {
  return cpuTimed(() => {
    try {
      return { ok: true as const, cueCount: toPublishableWebVtt(text, null, "X-TIMESTAMP-MAP=TEST").cueCount };
    } catch (err) {
      if (err instanceof InvalidCaptionsError) return { ok: false as const, error: err };
      throw err;
    }
  });
}

describe("caption parsing takes time in proportion to the file, whatever it holds", () => {
  const hostile: [string, string, RegExp | number][] = [
    ["blanks after an SRT timing line, then a letter", filled(SRT_TIMING, " ", "x\ntext\n"), /not a timestamp/],
    ["tabs after an SRT timing line, then a letter", filled(SRT_TIMING, "\t", "x\ntext\n"), /not a timestamp/],
    [
      "blanks and X1 without its colon after a timing line",
      filled(SRT_TIMING, "     X1", "\ntext\n"),
      /not a timestamp/,
    ],
    ["a box of many X1: after a timing line", filled(SRT_TIMING, " X1:", "\ntext\n"), 1],
    ["<font without > in SRT cue text", filled(`${SRT_TIMING}\n`, "<font", "\n"), 1],
    ["</FONT without > in SRT cue text", filled(`${SRT_TIMING}\n`, "</FONT ", "\n"), 1],
    ["<font> tags with long attributes", filled(`${SRT_TIMING}\n`, '<font color="#ff0"       >a</font>', "\n"), 1],
    ["{\\ without } in SRT cue text", filled(`${SRT_TIMING}\n`, "{\\", "\n"), 1],
    ["{\\ overrides with } far away", filled(`${SRT_TIMING}\n{\\an8`, "{\\", "}\n"), 1],
    ["many --> on an SRT timing line", filled("1\n00:00:01,000 ", "--> ", "\ntext\n"), /not a timestamp/],
    ["many --> on a WebVTT timing line", filled("WEBVTT\n\n00:00:01.000 ", "-->", "\ntext\n"), /not a timestamp/],
    [
      "a start time of a million digits (SRT)",
      filled("1\n", "9", ":00:01,000 --> 00:00:02,000\nx\n"),
      /past 100 hours/,
    ],
    [
      "a start time of a million digits (WebVTT)",
      filled("WEBVTT\n\n", "1", ":00:00.000 --> 00:00:02.000\nx\n"),
      /past 100 hours/,
    ],
    ["an end time of digits then a letter", filled(`${SRT_TIMING.slice(0, -12)}`, "9", "x\nx\n"), /not a timestamp/],
    ["blanks after a WebVTT timing line, then a letter", filled(VTT_TIMING, " ", "x\ntext\n"), /Unknown cue setting/],
    ["a cue setting of a million characters", filled(`${VTT_TIMING} position:`, "5", "!\nx\n"), /Unknown cue setting/],
    ["a million valid cue settings", filled(VTT_TIMING, " align:start", "\nx\n"), 1],
    ["a line of blanks that ends in a letter", filled("", " ", "x\n"), /Expected a subtitle/],
    ["a WebVTT header line of blanks", filled("WEBVTT", " ", "x\n\n00:00:01.000 --> 00:00:02.000\nx\n"), 1],
    ["a million empty lines", filled("", "\n", `${SRT_TIMING}\nx\n`), 1],
    ["a cue number of a million digits", filled("", "7", "\n00:00:01,000 --> 00:00:02,000\nx\n"), 1],
  ];
  // Every cue of a file of tiny cues out of order: the parse, the sort and the output stay linear.
  const manyCues = Array.from(
    { length: 18_000 },
    (_, i) => `${i}\n00:00:${String(59 - (i % 60)).padStart(2, "0")},000 --> 00:01:00,000\n<font>a</font>{\\b1}\n`,
  );
  hostile.push(["18,000 cues out of order, each with a tag and an override", manyCues.join("\n"), 18_000]);

  it.each(hostile)("%s: parsed within the bound", (_what, text, expected) => {
    const size = Buffer.byteLength(text);
    expect(size).toBeLessThanOrEqual(MAX_CAPTION_BYTES);
    const { cpuMs, result } = parseTimed(text);
    expect(cpuMs).toBeLessThan((CPU_MS_PER_MIB * size) / 1024 ** 2);
    if (typeof expected === "number") {
      expect(result.ok ? result.cueCount : result.error.message).toBe(expected);
    } else {
      expect(result.ok ? "accepted" : result.error.message).toMatch(expected);
    }
  });
});

describe("a hostile caption file through a running API", () => {
  let db: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-caption-parse-"));
  });
  afterAll(async () => {
    await stopAllProcesses();
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("addCaption with 1 MiB of blanks after a timing line answers promptly, and /health answers meanwhile", async () => {
    const api = await startApiProcess("api-caption-parse", { DATABASE_URL: db.url, DATA_DIR: dataDir });
    const gql = async (body: BodyInit, headers: Record<string, string> = {}) =>
      (await fetch(`${api.url}/graphql`, { method: "POST", body, headers: { ...ADMIN_AUTH, ...headers } })).json();
    const { id: videoId } = await createUpload(api.url, "hostile captions");

    // As a multipart file, so the API's default request limits let 1 MiB through.
    const form = new FormData();
    const input = { videoId, language: "en", name: "hostile", file: null };
    form.append("operations", JSON.stringify({ query: operationText(ADD_CAPTION), variables: { input } }));
    form.append("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.append("0", new Blob([filled(SRT_TIMING, " ", "x\ntext\n")]), "hostile.srt");

    const started = performance.now();
    const added = gql(form).then((r) => ({ r, ms: performance.now() - started }));
    added.catch(() => {});
    // Health checks while the request is in flight: each answers within 3 s (the old parse blocked for minutes).
    const health: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${api.url}/health`, { signal: AbortSignal.timeout(3000) });
      health.push(res.status);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(health).toEqual([200, 200, 200, 200, 200]);
    const { r, ms } = await Promise.race([
      added,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("addCaption took over 10 s")), 10_000)),
    ]);
    expect(r.data.addCaption).toMatchObject({ __typename: "InvalidCaptionsError", line: 2 });
    expect(r.data.addCaption.message).toMatch(/not a timestamp/);
    expect(ms).toBeLessThan(10_000);
  });
});
