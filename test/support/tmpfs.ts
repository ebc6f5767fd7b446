import { execFile } from "node:child_process";
import { mkdir, open, rmdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Mounting a file system needs root (CAP_SYS_ADMIN); tests of a really full disk skip without it. */
export const canMountTmpfs = process.getuid?.() === 0;

/** A tmpfs of `bytes` at `dir` (created), so writes past it fail with a real ENOSPC; unmount when done. */
export async function mountSmallDisk(dir: string, bytes: number): Promise<{ unmount(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  await run("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir]);
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
