import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claimWorkDirs, removeDeadWorkersDirs } from "../../render-worker/work-dirs.ts";

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "videograph-work-dirs-test-"));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A worker root as another worker would have left it, owned by `owner`, last touched `ageMs` ago. */
async function rootOwnedBy(name: string, owner: object | null, ageMs = 0): Promise<string> {
  const dir = path.join(tmp, `videograph-worker-${name}`);
  await mkdir(path.join(dir, "videograph-job-x"), { recursive: true });
  const then = new Date(Date.now() - ageMs);
  if (owner) {
    await writeFile(path.join(dir, "owner.json"), JSON.stringify(owner));
    await utimes(path.join(dir, "owner.json"), then, then);
  }
  await utimes(dir, then, then);
  return dir;
}

describe("worker temp dirs", () => {
  it(`removes roots of gone owners (dead pid, reused pid, stale other container) and keeps live or \
just-created ones`, async () => {
    const mine = await claimWorkDirs(tmp);
    const me = JSON.parse(await readFile(path.join(mine.root, "owner.json"), "utf8")) as {
      pidSpace: string;
      pid: number;
      startTicks: number;
    };
    expect(me.pid).toBe(process.pid);

    await rootOwnedBy("alive", me);
    await rootOwnedBy("reused-pid", { ...me, startTicks: me.startTicks - 1 });
    await rootOwnedBy("dead-pid", { ...me, pid: 2 ** 22 + 1 });
    await rootOwnedBy("other-container-fresh", { ...me, pidSpace: "elsewhere" }, 60_000);
    await rootOwnedBy("other-container-stale", { ...me, pidSpace: "elsewhere" }, 6 * 60_000);
    await rootOwnedBy("being-created", null);
    await rootOwnedBy("ownerless-old", null, 6 * 60_000);
    await mkdir(path.join(tmp, "videograph-test-data-unrelated"));

    const removed = await removeDeadWorkersDirs(tmp, mine.root);
    expect(removed.map((d) => path.basename(d)).sort()).toEqual([
      "videograph-worker-dead-pid",
      "videograph-worker-other-container-stale",
      "videograph-worker-ownerless-old",
      "videograph-worker-reused-pid",
    ]);
    expect((await readdir(tmp)).sort()).toEqual(
      [
        path.basename(mine.root),
        "videograph-test-data-unrelated",
        "videograph-worker-alive",
        "videograph-worker-being-created",
        "videograph-worker-other-container-fresh",
      ].sort(),
    );
    await mine.release();
    expect(await readdir(tmp)).not.toContain(path.basename(mine.root));
  });
});
