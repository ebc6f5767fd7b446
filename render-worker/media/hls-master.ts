import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, Rung } from "../../src/protocol/media-facts.ts";
import {
  bitRatesByName,
  publishedRenditionBitRates,
  type SegmentBitRates,
  masterPlaylist,
  parsePlaylist,
} from "../../src/shared/hls-playlists.ts";
import { log } from "../log.ts";
import {
  CACHE_FINAL,
  PLAYLIST_TYPE,
  type PublishTarget,
  type RungState,
  SNAPSHOT_DIR,
  sizedRendition,
} from "./hls-rung-state.ts";

export interface MasterPublication {
  /** Whether the master playlist is in storage. */
  readonly published: boolean;
  /** What the final master states each rung carries (its last pass); empty before. */
  readonly finalRates: Map<string, SegmentBitRates>;
  /**
   * After a pass's rungs: publishes the master once every rung has a segment (and again when a rung
   * failed since), and on the final pass with what the rungs carry.
   */
  afterPass(live: RungState[], failedRungs: Set<string>, final: boolean): Promise<void>;
}

/** The master playlist of a publication: `ladder` less its failed rungs. */
export function createMasterPublication(
  target: PublishTarget,
  opts: {
    ladder: Rung[];
    probe: ProbeResult;
    /** Rungs left open: no measured rates, the API lists their later chunks. */
    openRungs: ReadonlySet<string>;
    onPlayable?: (masterKey: string) => Promise<void>;
  },
): MasterPublication {
  const { storage, workDir, hls } = target;
  const { ladder, openRungs } = opts;
  const masterKey = hls.masterKey;
  let masterPublished = false;
  let masterFailedRungs = 0;
  let finalRates = new Map<string, SegmentBitRates>();

  async function afterPass(live: RungState[], failedRungs: Set<string>, final: boolean): Promise<void> {
    const masterIsStale = masterPublished && failedRungs.size > masterFailedRungs;
    const publishMaster = async (measured?: Map<string, SegmentBitRates>) => {
      const file = path.join(workDir, SNAPSHOT_DIR, "master.m3u8");
      await writeFile(
        file,
        masterPlaylist(
          ladder.filter((r) => !failedRungs.has(r.name)),
          opts.probe,
          measured,
        ),
      );
      await storage.upload(masterKey, file, { contentType: PLAYLIST_TYPE, cacheControl: CACHE_FINAL });
    };
    if ((!masterPublished && live.every((s) => s.publishedSegments > 0)) || masterIsStale) {
      await publishMaster();
      masterFailedRungs = failedRungs.size;
      if (!masterPublished) {
        masterPublished = true;
        await opts.onPlayable?.(masterKey);
      }
    }
    // The final pass (finish() runs it once): every segment is published, so the master can state
    // what the rungs carry rather than their bounds.
    if (final && masterPublished && openRungs.size === 0) {
      finalRates = await masterRates(live, failedRungs);
      if (finalRates.size > 0) await publishMaster(finalRates);
    }
  }

  /**
   * What each rung the final master lists carries: this run's rungs from the bytes it recorded; a
   * rung whose segments it did not all upload (kept from a published playlist: a resumed run, or one
   * behind another) or does not encode at all (a retryVariant run's other rungs) from its published
   * playlist and the bytes storage lists for its segments. A rung that cannot be read whole (a
   * playlist not ended, a segment not listed, storage refusing) keeps its bound.
   */
  async function masterRates(live: RungState[], failedRungs: Set<string>): Promise<Map<string, SegmentBitRates>> {
    // A rung with segments kept from a published playlist (a resumed run, or one behind another) is
    // left out by bitRatesByName (their bytes are not known here) and read from storage below.
    const measured = bitRatesByName(live.map(sizedRendition), target.targetDuration);
    const unmeasured = ladder.filter((r) => !failedRungs.has(r.name) && !measured.has(r.name));
    await Promise.all(
      unmeasured.map(async ({ name }) => {
        try {
          const rates = await publishedBitRates(name);
          if (rates) measured.set(name, rates);
        } catch (err) {
          log.warn("could not measure a published rung: the master states its bound", {
            rung: name,
            error: String(err),
          });
        }
      }),
    );
    return measured;
  }

  /** A published rung's rates, from its ended playlist and the bytes storage lists for its segments. */
  async function publishedBitRates(rung: string): Promise<SegmentBitRates | undefined> {
    const prefix = `${hls.rungPrefix(rung)}/`;
    const [text, objects] = await Promise.all([storage.readText(hls.playlistKey(rung)), storage.list(prefix)]);
    if (text === null) return undefined;
    const stored = new Map(objects.map((o) => [o.key, o.bytes]));
    return publishedRenditionBitRates(parsePlaylist(text), (uri) => stored.get(prefix + uri), target.targetDuration);
  }

  return {
    get published() {
      return masterPublished;
    },
    get finalRates() {
      return finalRates;
    },
    afterPass,
  };
}
