import { mkdir, readdir, realpath, stat } from "node:fs/promises";
import path from "node:path";
import type { WorkerStorage } from "../storage/types.ts";

/** Manim names partial movie files by hash (`{crc}_{crc}_{crc}.mp4`); anything else is not a cache entry. */
const PARTIAL_MOVIE_NAME = /^[A-Za-z0-9_-]{1,200}\.mp4$/;
/** Manim itself keeps at most 100 per scene (`max_files_cached`); more is stale. */
const MAX_RESTORED = 200;

/**
 * Copies the scene's partial movie files from storage into Manim's partial movie dir, so Manim
 * finds the animations whose hash did not change and skips them. Returns the names restored.
 */
export async function restorePartialMovies(
  storage: WorkerStorage,
  keyPrefix: string,
  localDir: string,
): Promise<Set<string>> {
  await mkdir(localDir, { recursive: true });
  const names = (await storage.list(keyPrefix))
    .map(({ key }) => key.slice(keyPrefix.length))
    .filter((name) => PARTIAL_MOVIE_NAME.test(name));
  const restored = new Set<string>();
  for (const name of names.slice(0, MAX_RESTORED)) {
    await storage.download(`${keyPrefix}${name}`, path.join(localDir, name));
    restored.add(name);
  }
  return restored;
}

/** Uploads the partial movie files this render added. Returns their names. */
export async function uploadNewPartialMovies(
  storage: WorkerStorage,
  keyPrefix: string,
  workDir: string,
  localDir: string,
  restored: Set<string>,
): Promise<string[]> {
  const dir = await realFileInside(workDir, localDir, "directory");
  if (dir === null) return [];
  const uploaded: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    // Dirent types come from lstat: a symlink the sandbox left is not a file here.
    if (!entry.isFile() || !PARTIAL_MOVIE_NAME.test(entry.name) || restored.has(entry.name)) continue;
    await storage.upload(`${keyPrefix}${entry.name}`, path.join(dir, entry.name), {
      contentType: "video/mp4",
      cacheControl: "private, max-age=0",
    });
    uploaded.push(entry.name);
  }
  return uploaded;
}

/**
 * The real path of `file` when it is a regular file (or directory) inside `workDir`, else null.
 * The sandbox writes the work dir, so any of its paths may be a symlink to a file the worker can
 * read and the sandbox could not.
 */
export async function realFileInside(
  workDir: string,
  file: string,
  kind: "file" | "directory" = "file",
): Promise<string | null> {
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    return null;
  }
  const root = await realpath(workDir);
  if (!real.startsWith(root + path.sep)) return null;
  const info = await stat(real);
  return (kind === "file" ? info.isFile() : info.isDirectory()) ? real : null;
}
