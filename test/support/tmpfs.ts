import { execFile } from "node:child_process";
import { mkdir, open, rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Mounting a file system needs root (CAP_SYS_ADMIN); tests of a really full disk skip without it. */
export const canMountTmpfs = process.getuid?.() === 0;

/**
 * A tmpfs of `bytes` at `dir` (created), so writes past it fail with a real ENOSPC; unmount when done.
 * With `inodes`, at most that many files and directories (`fillInodes`): a tmpfs full of bytes still
 * makes directories, which a full disk does not.
 */
export async function mountSmallDisk(
  dir: string,
  bytes: number,
  options: { inodes?: number } = {},
): Promise<{ unmount(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const inodes = options.inodes ? `,nr_inodes=${options.inodes}` : "";
  await run("mount", ["-t", "tmpfs", "-o", `size=${bytes}${inodes}`, "tmpfs", dir]);
  return {
    async unmount() {
      await run("umount", ["-l", dir]);
      await rmdir(dir).catch(() => {});
    },
  };
}

/**
 * Fills the disk at `dir` to a real ENOSPC with one file, `name`; resolves with its path (remove it to
 * make room). Throws when a write fails for another reason.
 */
export async function fillDisk(dir: string, name = "filler"): Promise<string> {
  const file = path.join(dir, name);
  const handle = await open(file, "w");
  const chunk = Buffer.alloc(256 * 1024, 1);
  try {
    for (;;) await handle.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    await handle.close();
  }
  return file;
}

/**
 * Takes every inode left on the tmpfs at `dir` (mounted with `inodes`) with empty files in one
 * folder, `name`, so no file or directory can be made there (ENOSPC); resolves with its path
 * (remove it, recursively, to give them back).
 */
export async function fillInodes(dir: string, name = "inode-filler"): Promise<string> {
  const folder = path.join(dir, name);
  await mkdir(folder);
  try {
    for (let i = 0; ; i++) await writeFile(path.join(folder, String(i)), "");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  }
  return folder;
}

/**
 * Keeps the disk at `dir` full, as a writer that takes any room freed (a run's own files let go)
 * does: fills it now and again every `everyMs` with a file of its own. `stop` removes them all.
 */
export async function keepDiskFull(dir: string, everyMs = 100): Promise<{ stop(): Promise<void> }> {
  const files: string[] = [await fillDisk(dir, "kept-full-0")];
  let stopped = false;
  const filling = (async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, everyMs));
      if (!stopped) files.push(await fillDisk(dir, `kept-full-${files.length}`));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await filling;
      await Promise.all(files.map((file) => rm(file, { force: true })));
    },
  };
}

/**
 * Runs `body` with a tmpfs of `bytes` mounted at `dir` (a full-disk test's set-up), unmounted after
 * it whatever its outcome.
 */
export async function onSmallDisk<T>(dir: string, bytes: number, body: () => Promise<T>): Promise<T> {
  const disk = await mountSmallDisk(dir, bytes);
  try {
    return await body();
  } finally {
    await disk.unmount();
  }
}
