import { execFile } from "node:child_process";
import { mkdir, rmdir } from "node:fs/promises";
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
