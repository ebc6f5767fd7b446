import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import zlib from "node:zlib";

/** The encodings the API sends, best first. */
export type ContentEncoding = "br" | "gzip";
const BEST_FIRST: readonly ContentEncoding[] = ["br", "gzip"];

/** The file name suffix of a precompressed copy. */
export const ENCODED_SUFFIX: Record<ContentEncoding, string> = { br: ".br", gzip: ".gz" };

/**
 * The best of `available` that an `Accept-Encoding` header accepts, or null (send it as it is).
 * A client's header is read with plain splits, no pattern: `br;q=0` refuses br, `*` accepts any,
 * and an encoding the header does not name is not sent.
 */
export function preferredEncoding(
  acceptEncoding: string | null | undefined,
  available: readonly ContentEncoding[] = BEST_FIRST,
): ContentEncoding | null {
  if (!acceptEncoding || acceptEncoding.length > 1000) return null;
  const weights = new Map<string, number>();
  for (const part of acceptEncoding.split(",")) {
    const [name = "", ...params] = part.split(";");
    let weight = 1;
    for (const param of params) {
      const [key, value] = param.split("=");
      if (key?.trim().toLowerCase() === "q") weight = Number(value?.trim());
    }
    if (Number.isFinite(weight)) weights.set(name.trim().toLowerCase(), weight);
  }
  let best: ContentEncoding | null = null;
  let bestWeight = 0;
  for (const encoding of BEST_FIRST) {
    if (!available.includes(encoding)) continue;
    const weight = weights.get(encoding) ?? weights.get("*") ?? 0;
    if (weight > bestWeight) {
      best = encoding;
      bestWeight = weight;
    }
  }
  return best;
}

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

/**
 * `body` compressed both ways, off the event loop (zlib's thread pool). `quality` trades time for
 * size: at build time the highest (9 for files over 1 MB: 11 takes ten times as long there, for
 * 8 % less), a middle one for a page made while the API runs.
 */
export async function compressBoth(
  body: Buffer,
  quality: "build" | "runtime",
): Promise<Record<ContentEncoding, Buffer>> {
  const [br, gz] = await Promise.all([
    brotli(body, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: quality === "runtime" ? 5 : body.length > 1_000_000 ? 9 : 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length,
      },
    }),
    gzip(body, { level: 9 }),
  ]);
  return { br, gzip: gz };
}

/** Text files worth compressing, by extension. */
const COMPRESSIBLE = new Set([".js", ".css", ".html", ".svg", ".json"]);

export function isCompressible(name: string): boolean {
  return COMPRESSIBLE.has(path.extname(name));
}

/**
 * Writes `<file>.br` and `<file>.gz` beside every compressible file of `dir` (not recursive), each
 * only when it is smaller than the file.
 */
export async function precompressDir(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    if (!isCompressible(name) || !(await stat(file)).isFile()) continue;
    const body = await readFile(file);
    const encoded = await compressBoth(body, "build");
    for (const encoding of BEST_FIRST) {
      if (encoded[encoding].length < body.length) await writeFile(file + ENCODED_SUFFIX[encoding], encoded[encoding]);
    }
  }
}
