import { describe, expect, it } from "vitest";
import { createRenderLimiter } from "../src/thumbnails/render-image.ts";

describe("the image render limiter", () => {
  it("runs at most `concurrency` tasks at once, queues `maxWaiting`, refuses the rest with TooBusyError", async () => {
    const limiter = createRenderLimiter(2, 2);
    let running = 0;
    let most = 0;
    const releases: (() => void)[] = [];
    const task = () =>
      limiter.run(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
        return "done";
      });
    const accepted = [task(), task(), task(), task()];
    await expect(task()).rejects.toMatchObject({ name: "TooBusyError" });
    // Release the running ones until every accepted task has run.
    while (releases.length || running) {
      await new Promise((r) => setImmediate(r));
      releases.shift()?.();
    }
    expect(await Promise.all(accepted)).toEqual(["done", "done", "done", "done"]);
    expect(most).toBe(2);
    // A task that throws frees its slot too.
    await expect(limiter.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await Promise.all([limiter.run(async () => 1), limiter.run(async () => 2)])).toEqual([1, 2]);
  });
});
