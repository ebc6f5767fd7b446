import { readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { RUNG_INIT_SEGMENT } from "../../src/protocol/storage-layout.ts";
import { ObjectExistsError } from "../storage/write-once.ts";
import { log } from "../log.ts";
import { splitFragmentedMp4 } from "./fragmented-mp4.ts";
import {
  CACHE_IMMUTABLE,
  type PublishTarget,
  RungPublishError,
  type RungState,
  SNAPSHOT_DIR,
} from "./hls-rung-state.ts";
import { sameSegmentCut } from "./segment-match.ts";

const SEGMENT_TYPE = "video/mp2t";
const FMP4_SEGMENT_TYPE = "video/iso.segment";
const FMP4_INIT_TYPE = "video/mp4";
/** An MPEG-TS file is whole packets of this size; a segment that is not was cut short. */
const TS_PACKET_BYTES = 188;

/**
 * Uploads one of a rung's files: a refusal of that file fails the rung alone (RungPublishError),
 * an outage or a full storage the publication.
 */
export async function uploadOfRung(
  { storage }: PublishTarget,
  rung: string,
  key: string,
  file: string,
  options: { contentType: string; cacheControl: string },
  once = false,
): Promise<void> {
  try {
    await (once ? storage.uploadOnce(key, file, options) : storage.upload(key, file, options));
  } catch (err) {
    // Another run published other bytes under this key: the whole run stops, whatever the rung.
    if (err instanceof ObjectExistsError) throw err;
    throw storageUnavailable(err) ?? new RungPublishError(rung, err);
  }
}

/**
 * Uploads a segment once. When its key already holds other bytes, which no published playlist
 * lists (a listed one is never uploaded again), an earlier run of the job uploaded it and died
 * before listing it. If those bytes are the same cut of the same rung, encoded again (x264's
 * threads make two encodes of the same frames differ in their bytes), they are kept and listed
 * as this run's own, as a resumed run keeps an earlier run's segments; anything else still fails
 * the run. `probeFile` is this run's segment as ffprobe can read it (an fMP4 one with its init),
 * `init` what to put before the stored bytes to read them so. Resolves with how many bytes the
 * stored object holds: `file`'s (`bytes`), or the kept object's.
 */
async function uploadSegmentOnce(
  target: PublishTarget,
  rung: string,
  key: string,
  file: { path: string; bytes: number },
  options: { contentType: string; cacheControl: string },
  compare: { probeFile: string; format: "mpegts" | "mov"; init?: Buffer; decrypt?: (stored: Buffer) => Buffer },
): Promise<number> {
  const { storage, workDir } = target;
  try {
    await uploadOfRung(target, rung, key, file.path, options, true);
    return file.bytes;
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err;
    const stored = path.join(workDir, SNAPSHOT_DIR, `${rung}.stored.${path.basename(key)}`);
    let storedBytes: number;
    try {
      await storage.download(key, stored);
      storedBytes = (await stat(stored)).size;
      if (compare.init || compare.decrypt) {
        const bytes = await readFile(stored);
        const clear = compare.decrypt ? compare.decrypt(bytes) : bytes;
        await writeFile(stored, compare.init ? Buffer.concat([compare.init, clear]) : clear);
      }
      if (!(await sameSegmentCut(compare.probeFile, stored, compare.format))) throw err;
    } finally {
      await rm(stored, { force: true });
    }
    log.info("kept a segment an earlier run uploaded and did not list: the same cut, other bytes", { key });
    return storedBytes;
  }
}

/** Publishes one segment ffmpeg listed (fMP4 or MPEG-TS) and records the bytes storage holds for it. */
export async function publishSegment(target: PublishTarget, state: RungState, uri: string): Promise<void> {
  if (target.fragmented) {
    await publishFragmentedSegment(target, state, uri);
    return;
  }
  const { workDir, hls } = target;
  const name = state.rung.name;
  const segmentKey = `${hls.rungPrefix(name)}/${uri}`;
  const { size } = await stat(path.join(workDir, name, uri));
  if (size === 0 || size % TS_PACKET_BYTES !== 0) throw segmentCutShort(name, uri, `at ${size} bytes`);
  const segmentOptions = { contentType: SEGMENT_TYPE, cacheControl: CACHE_IMMUTABLE };
  const segmentFile = path.join(workDir, name, uri);
  const { encryption } = target;
  const compare = {
    probeFile: segmentFile,
    format: "mpegts" as const,
    ...(encryption ? { decrypt: (stored: Buffer) => encryption.decrypt(uri, stored) } : {}),
  };
  if (!encryption) {
    const file = { path: segmentFile, bytes: size };
    state.sizes.set(uri, await uploadSegmentOnce(target, name, segmentKey, file, segmentOptions, compare));
    return;
  }
  const encrypted = encryption.encrypt(uri, await readFile(segmentFile));
  const encryptedFile = path.join(workDir, SNAPSHOT_DIR, `${name}.${uri}`);
  await writeFile(encryptedFile, encrypted);
  try {
    const file = { path: encryptedFile, bytes: encrypted.byteLength };
    state.sizes.set(uri, await uploadSegmentOnce(target, name, segmentKey, file, segmentOptions, compare));
  } finally {
    await rm(encryptedFile, { force: true });
  }
}

/**
 * An fMP4 segment as ffmpeg wrote it carries the rung's init: the init is published once (the
 * same bytes in every run of the same encode; other bytes under its key fail the run, as a
 * segment's would), and the segment without it.
 */
async function publishFragmentedSegment(target: PublishTarget, state: RungState, uri: string): Promise<void> {
  const { workDir, hls } = target;
  const name = state.rung.name;
  let parts: ReturnType<typeof splitFragmentedMp4>;
  try {
    parts = splitFragmentedMp4(await readFile(path.join(workDir, name, uri)));
  } catch (err) {
    throw segmentCutShort(name, uri, `(${err instanceof Error ? err.message : String(err)})`);
  }
  const { encryption } = target;
  if (state.init === null) {
    const initFile = path.join(workDir, SNAPSHOT_DIR, `${name}.${RUNG_INIT_SEGMENT}`);
    await writeFile(initFile, encryption ? encryption.init(parts.init) : parts.init);
    const initOptions = { contentType: FMP4_INIT_TYPE, cacheControl: CACHE_IMMUTABLE };
    await uploadOfRung(target, name, `${hls.rungPrefix(name)}/${RUNG_INIT_SEGMENT}`, initFile, initOptions, true);
    state.init = Buffer.from(parts.init);
  } else if (!state.init.equals(parts.init)) {
    throw new Error(`The segment ${name}/${uri} has another init (codec configuration) than the rung's first`);
  }
  const mediaFile = path.join(workDir, SNAPSHOT_DIR, `${name}.${uri}`);
  const media = encryption ? encryption.encrypt(uri, parts.media, parts.init) : parts.media;
  await writeFile(mediaFile, media);
  try {
    const options = { contentType: FMP4_SEGMENT_TYPE, cacheControl: CACHE_IMMUTABLE };
    // ffmpeg's file has the init before the media: what ffprobe reads the stored media with.
    const compare = {
      probeFile: path.join(workDir, name, uri),
      format: "mov" as const,
      init: state.init,
      ...(encryption ? { decrypt: (stored: Buffer) => encryption.decrypt(uri, stored) } : {}),
    };
    const file = { path: mediaFile, bytes: media.byteLength };
    const key = `${hls.rungPrefix(name)}/${uri}`;
    state.sizes.set(uri, await uploadSegmentOnce(target, name, key, file, options, compare));
  } finally {
    await rm(mediaFile, { force: true });
  }
}

/**
 * A segment ffmpeg listed but did not write whole, or a list it did not write whole: its writes
 * failed (a full disk), and ffmpeg exits 0.
 */
export class SegmentCutShortError extends Error {
  readonly code = "EIO";
}

function segmentCutShort(rung: string, uri: string, how: string): Error {
  return new SegmentCutShortError(`The segment ${rung}/${uri} was cut short ${how} in the work dir`);
}

/** A rung's list ffmpeg did not write whole: a failed write, as a cut segment is. */
export function listCutShort(rung: string, how: string): Error {
  return new SegmentCutShortError(`The ${rung} segment list was cut short ${how} in the work dir`);
}
