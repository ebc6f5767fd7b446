import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, copyFile, link, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { makeStorageDir } from "../../src/shared/storage-errors.ts";
import path from "node:path";
import type { UploadOptions, WorkerStorage } from "./types.ts";
import { assertSameBytes } from "./write-once.ts";

/**
 * Storage in a local directory: key `a/b` is the file `${dataDir}/a/b`. Content type and cache
 * control are not stored; whoever serves the directory derives them from the file name.
 */
export function createLocalWorkerStorage(dataDir: string): WorkerStorage {
  const root = path.resolve(dataDir);

  function pathFor(key: string): string {
    assertValidKey(key);
    return path.join(root, ...key.split("/"));
  }

  /**
   * Copies `file` to a temp file in the directory of `key`'s file (so on the same file system) and
   * hands both paths to `place`, which moves it there; the temp file is gone afterwards either way.
   */
  async function placeCopy(key: string, file: string, place: (temp: string, destination: string) => Promise<void>) {
    const destination = pathFor(key);
    await makeStorageDir(path.dirname(destination));
    const temp = `${destination}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await copyFile(file, temp);
      await place(temp, destination);
    } finally {
      await rm(temp, { force: true });
    }
  }

  return {
    async inputFor(key) {
      const file = pathFor(key);
      try {
        await access(file);
      } catch {
        throw new Error(`Storage object ${key} does not exist`);
      }
      return file;
    },

    async upload(key, file, _opts: UploadOptions) {
      // rename() replaces the destination atomically.
      await placeCopy(key, file, rename);
    },

    async uploadOnce(key, file, _opts: UploadOptions) {
      await placeCopy(key, file, async (temp, destination) => {
        try {
          // link() fails when the destination exists, so it never replaces one (rename would).
          await link(temp, destination);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
          await assertSameBytes(key, file, createReadStream(destination));
        }
      });
    },

    async list(prefix) {
      const dir = pathFor(prefix.replace(/\/$/, ""));
      const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code === "ENOENT") return [];
          throw err;
        },
      );
      const files = entries.filter((e) => e.isFile() && !e.name.endsWith(".tmp"));
      const objects = await Promise.all(
        files.map(async (e) => {
          const file = path.join(e.parentPath, e.name);
          // A file removed since the directory was read is not listed.
          const bytes = await stat(file).then(
            (s) => s.size,
            (err: NodeJS.ErrnoException) => {
              if (err.code === "ENOENT") return null;
              throw err;
            },
          );
          return bytes === null ? null : { key: path.relative(root, file).split(path.sep).join("/"), bytes };
        }),
      );
      return objects.filter((o) => o !== null);
    },

    async download(key, file) {
      await copyFile(pathFor(key), file);
    },

    async readText(key) {
      try {
        return await readFile(pathFor(key), "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return null;
        throw err;
      }
    },
  };
}

/** Rejects keys that could escape the storage root or name no file. */
export function assertValidKey(key: string): void {
  const segments = key.split("/");
  const invalid =
    key.length === 0 ||
    key.includes("\\") ||
    key.includes("\0") ||
    path.isAbsolute(key) ||
    /^[a-zA-Z]:/.test(key) ||
    segments.some((s) => s === "" || s === "." || s === "..");
  if (invalid) throw new Error(`Invalid storage key ${JSON.stringify(key)}`);
}
