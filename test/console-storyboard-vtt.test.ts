import { describe, expect, it } from "vitest";
import { MAX_STORYBOARD_VTT_CHARS, parseStoryboardVtt, tileAt } from "../console/src/storyboard-vtt.ts";
import { cpuTimed } from "./support/cpu-timed.ts";

const VTT_URL = "http://127.0.0.1:4000/media/videos/v1/storyboard/storyboard.vtt?token=t";
/** As in caption-parsing-time: CPU time per 2 MiB (the most the console reads). */
const CPU_MS_PER_FILE = 1000;

/** `unit` repeated to fill a file of just under MAX_STORYBOARD_VTT_CHARS after `head`. */
const filled = (head: string, unit: string) =>
  head + unit.repeat(Math.floor((MAX_STORYBOARD_VTT_CHARS - head.length - 16) / unit.length));

/** parseStoryboardVtt with the CPU time it took, interrupted (failing) past CUT_OFF_MS. */
function parseTimed(text: string): { cpuMs: number; tiles: number } {
  const { cpuMs, result } = cpuTimed(() => parseStoryboardVtt(text, VTT_URL).length);
  return { cpuMs, tiles: result };
}

/**
 * The console's storyboard WebVTT reader (console/src/storyboard-vtt.ts), run in Node: the page reads
 * the file from storage, so a hostile one must not freeze the tab.
 */
describe("the console's storyboard WebVTT reader", () => {
  it("reads each cue's tile, resolved against the file's URL, and finds the tile for a time", () => {
    const text =
      "WEBVTT\r\n\r\n00:00.000 --> 00:02.000\r\nsheet-0.jpg?token=t#xywh=0,0,160,90\r\n\r\n" +
      "1\n00:00:04.000 --> 00:00:06.000 align:start\nsheet-1.jpg#xywh=160,90,160,90\n\n" +
      "00:00:02.000 --> 00:00:04.000\nhttps://bucket.example/sheet-0.jpg?sig=1#xywh=160,0,160,90\n\n" +
      // Not tiles: a script or data URI, no rectangle, a zero-sized or negative one, times out of order or range.
      "00:00:06.000 --> 00:00:08.000\njavascript:alert(1)#xywh=0,0,1,1\n\n" +
      "00:00:06.000 --> 00:00:08.000\ndata:image/png;base64,AAAA#xywh=0,0,1,1\n\n" +
      "00:00:06.000 --> 00:00:08.000\nsheet-2.jpg\n\n" +
      "00:00:06.000 --> 00:00:08.000\nsheet-2.jpg#xywh=0,0,0,90\n\n" +
      "00:00:06.000 --> 00:00:08.000\nsheet-2.jpg#xywh=-1,0,10,90\n\n" +
      "00:00:08.000 --> 00:00:07.000\nsheet-2.jpg#xywh=0,0,10,90\n\n" +
      "00:61:00.000 --> 00:62:00.000\nsheet-2.jpg#xywh=0,0,10,90\n";
    const tiles = parseStoryboardVtt(text, VTT_URL);
    expect(tiles).toEqual([
      {
        start: 0,
        end: 2,
        sheet: "http://127.0.0.1:4000/media/videos/v1/storyboard/sheet-0.jpg?token=t",
        x: 0,
        y: 0,
        width: 160,
        height: 90,
      },
      { start: 2, end: 4, sheet: "https://bucket.example/sheet-0.jpg?sig=1", x: 160, y: 0, width: 160, height: 90 },
      {
        start: 4,
        end: 6,
        sheet: "http://127.0.0.1:4000/media/videos/v1/storyboard/sheet-1.jpg",
        x: 160,
        y: 90,
        width: 160,
        height: 90,
      },
    ]);
    expect([0, 1.99, 2, 5, 60].map((time) => tileAt(tiles, time)?.start)).toEqual([0, 0, 2, 4, 4]);
    expect(tileAt([], 1)).toBeNull();
    // Not a WebVTT file, or one over the size the console reads: no tiles.
    expect(parseStoryboardVtt(text.replace("WEBVTT", "WEBVTX"), VTT_URL)).toEqual([]);
    expect(parseStoryboardVtt(`${text}${" ".repeat(MAX_STORYBOARD_VTT_CHARS)}`, VTT_URL)).toEqual([]);
  });

  const timing = "0:00.000-->0:01.000\n";
  const cue = `${timing}a#xywh=0,0,1,1\n`;
  const hostile: [string, string, number][] = [
    ["arrows on one line", filled("WEBVTT\n\n", "-->"), 0],
    ["colons and digits in a timestamp", `${filled("WEBVTT\n\n0", ":0")} --> 1\nx`, 0],
    ["a rectangle of commas", `WEBVTT\n\n${timing}sheet.jpg#xywh=${"1,".repeat(900_000)}1\n`, 0],
    ["a sheet name of 2 MiB", `WEBVTT\n\n${timing}${"a".repeat(2_000_000)}#xywh=0,0,1,1\n`, 1],
    [
      "the shortest cues, filling the file",
      filled("WEBVTT\n\n", cue),
      Math.floor((MAX_STORYBOARD_VTT_CHARS - 24) / cue.length),
    ],
    ["blank lines", filled("WEBVTT\n\n", "\n"), 0],
  ];
  it.each(hostile)("%s: read within the bound", (_name, text, tiles) => {
    const parsed = parseTimed(text);
    expect(parsed.tiles).toBe(tiles);
    expect(parsed.cpuMs).toBeLessThan(CPU_MS_PER_FILE);
  });
});
