import { parsePlaylist } from "../../src/shared/hls-playlists.ts";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import path from "node:path";
import type { StaticRenditionPlan } from "../../src/protocol/static-rendition-messages.ts";
import { timelineZeroSeconds } from "../../src/protocol/media-timeline.ts";
import { hlsLayout, RUNG_INIT_SEGMENT } from "../../src/protocol/storage-layout.ts";
import type { WorkerStorage } from "../storage/types.ts";
import { MediaError } from "./errors.ts";
import { runFfmpeg } from "./ffmpeg-process.ts";
import { ownMediaFile, mediaInputOptions } from "./media-input.ts";
import { probeContainer } from "./probe.ts";

/** The segment names the ladder's segment muxer writes (encode-ladder.ts); a playlist naming anything else is refused. */
const SEGMENT_URI = /^seg_\d{5}\.ts$/;
/** The same for fMP4 rungs: the init segment the playlist maps, and the media segments after it. */
const FMP4_SEGMENT_URI = /^seg_\d{5}\.m4s$/;

/** A static rendition made in the work dir: the file, and what ffprobe read back from it. */
export interface RemuxedRendition {
  file: string;
  sizeBytes: number;
  durationSeconds: number;
  width: number | null;
  height: number | null;
}

/**
 * The files of a published, finished rung playlist, in order: for an fMP4 rung its init segment
 * first. Only the names the ladder writes are accepted: the playlist is read back from storage and
 * must not point anywhere else.
 */
function finishedRungFiles(playlist: string, rung: string): { files: string[]; fmp4: boolean } {
  const { segments, endList } = parsePlaylist(playlist);
  if (!endList) throw new MediaError(`The ${rung} rung's playlist is not finished`, { retryable: false });
  const init = segments.find((s) => s.map)?.map?.uri;
  if (init !== undefined && init !== RUNG_INIT_SEGMENT) {
    throw new MediaError(`The ${rung} rung's playlist maps ${JSON.stringify(init)}, not its init segment`, {
      retryable: false,
    });
  }
  const segmentUri = init === undefined ? SEGMENT_URI : FMP4_SEGMENT_URI;
  const uris = segments.map((s) => s.uri);
  const foreign = uris.find((u) => !segmentUri.test(u));
  if (foreign !== undefined) {
    throw new MediaError(`The ${rung} rung's playlist lists ${JSON.stringify(foreign)}, not a segment`, {
      retryable: false,
    });
  }
  if (uris.length === 0) throw new MediaError(`The ${rung} rung has no segments`, { retryable: false });
  return init === undefined ? { files: uris, fmp4: false } : { files: [init, ...uris], fmp4: true };
}

/**
 * One rung as one file: its published segments joined byte for byte (an fMP4 rung's after its init
 * segment, which makes one fragmented MP4). The segment muxer keeps one timeline across segments,
 * so the joined file plays them in order without a gap.
 */
async function joinRung(
  storage: WorkerStorage,
  outputPrefix: string,
  rung: string,
  dir: string,
): Promise<{ file: string; fmp4: boolean }> {
  const hls = hlsLayout(outputPrefix);
  const playlist = await storage.readText(hls.playlistKey(rung));
  if (playlist === null) throw new MediaError(`The ${rung} rung's playlist is missing`, { retryable: false });
  const { files, fmp4 } = finishedRungFiles(playlist, rung);
  const joined = path.join(dir, fmp4 ? `${rung}.mp4` : `${rung}.ts`);
  const piece = path.join(dir, `${rung}.part`);
  try {
    // One pipeline into the joined file, each segment's bytes in turn (a pipeline per segment left
    // its listeners on the file's stream: a warning past ten segments).
    await pipeline(async function* () {
      for (const name of files) {
        await storage.download(`${hls.rungPrefix(rung)}/${name}`, piece);
        yield* createReadStream(piece);
      }
    }, createWriteStream(joined));
  } finally {
    await rm(piece, { force: true });
  }
  return { file: joined, fmp4 };
}

/**
 * Makes one static rendition from a video's published HLS rungs without encoding: joined, remuxed to MP4 with
 * the moov first (`+faststart`) so a browser plays and seeks before the whole file arrives. Each rung keeps its
 * timeline, moved so the source's 0 is the file's; the AAC priming and B-frame delay before it are left to the
 * MP4's edit lists, so the file lasts as long as the source and its streams stay in sync.
 */
export async function remuxRendition(
  storage: WorkerStorage,
  outputPrefix: string,
  plan: StaticRenditionPlan,
  workDir: string,
  signal: AbortSignal,
): Promise<RemuxedRendition> {
  const dir = path.join(workDir, plan.name.toLowerCase());
  await mkdir(dir, { recursive: true });
  const rungs = [plan.videoRung, plan.audioRung].filter((r): r is string => r !== null);
  const joined: { file: string; fmp4: boolean }[] = [];
  for (const rung of rungs) joined.push(await joinRung(storage, outputPrefix, rung, dir));
  const target = plan.name === "AUDIO" ? "rendition.m4a" : "rendition.mp4";
  const maps =
    plan.videoRung === null ? ["-map", "0:a:0"] : ["-map", "0:v:0", ...(plan.audioRung ? ["-map", "1:a:0"] : [])];
  await runFfmpeg({
    cwd: dir,
    signal,
    // Our own segments, opened as MPEG-TS (or, fMP4, as MP4) over file: only.
    inputs: joined.map(({ file, fmp4 }) => {
      const input = ownMediaFile(file, fmp4 ? "mov" : "mpegts");
      const zero = timelineZeroSeconds(fmp4 ? "FMP4" : "TS");
      return { source: input.url, options: [...mediaInputOptions(input), "-itsoffset", (-zero).toFixed(6)] };
    }),
    outputs: [
      {
        target,
        options: [
          ...maps,
          "-c",
          "copy",
          "-copyts",
          "-avoid_negative_ts",
          "disabled",
          "-use_editlist",
          "1",
          "-movflags",
          "+faststart",
          "-f",
          plan.name === "AUDIO" ? "ipod" : "mp4",
        ],
      },
    ],
  });
  for (const { file } of joined) await rm(file, { force: true });
  const file = path.join(dir, target);
  const { data } = await probeContainer(file, { signal });
  const streams = data.streams ?? [];
  const video = streams.find((s) => s.codec_type === "video");
  const audio = streams.find((s) => s.codec_type === "audio");
  if ((plan.videoRung !== null) !== (video !== undefined) || (plan.audioRung !== null) !== (audio !== undefined)) {
    throw new MediaError(`The ${plan.name} rendition does not have the streams of its rungs`, { retryable: false });
  }
  const durationSeconds = Number(data.format?.duration);
  if (!(durationSeconds > 0)) {
    throw new MediaError(`The ${plan.name} rendition has no duration`, { retryable: false });
  }
  return {
    file,
    sizeBytes: (await stat(file)).size,
    durationSeconds,
    width: video?.width ?? null,
    height: video?.height ?? null,
  };
}
