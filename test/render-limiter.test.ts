import { describe, expect, it } from "vitest";
import { createRenderLimiter } from "../src/thumbnails/render-image.ts";

const never = new AbortController().signal;
/** Lets queued promise callbacks run. */
const tick = () => new Promise((r) => setImmediate(r));

describe("the image render limiter", () => {
  it("runs at most `concurrency` tasks at once, queues `maxWaiting`, refuses the rest with TooBusyError", async () => {
    const limiter = createRenderLimiter({ concurrency: 2, maxWaiting: 2, perClient: 10, perClientWaiting: 10 });
    let running = 0;
    let most = 0;
    const releases: (() => void)[] = [];
    const task = () =>
      limiter.run("a", never, async () => {
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
      await tick();
      releases.shift()?.();
    }
    expect(await Promise.all(accepted)).toEqual(["done", "done", "done", "done"]);
    expect(most).toBe(2);
    // A task that throws frees its slot too.
    await expect(limiter.run("a", never, () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await Promise.all([limiter.run("a", never, async () => 1), limiter.run("a", never, async () => 2)])).toEqual(
      [1, 2],
    );
  });

  it("lets one client run `perClient` tasks and queue `perClientWaiting`: another client still gets a slot", async () => {
    const limiter = createRenderLimiter({ concurrency: 2, maxWaiting: 16, perClient: 1, perClientWaiting: 2 });
    const order: string[] = [];
    const releases = new Map<string, () => void>();
    const task = (client: string, name: string) =>
      limiter.run(client, never, async () => {
        order.push(name);
        await new Promise<void>((r) => releases.set(name, r));
        return name;
      });
    const a = [task("a", "a1"), task("a", "a2"), task("a", "a3")];
    // Client a's fourth is refused at once, although a slot is free and the queue has room.
    await expect(task("a", "a4")).rejects.toMatchObject({ name: "OverShareError" });
    await tick();
    expect(order).toEqual(["a1"]);
    // The free slot is b's, not a's next.
    const b = task("b", "b1");
    await tick();
    expect(order).toEqual(["a1", "b1"]);
    releases.get("b1")!();
    expect(await b).toBe("b1");
    await tick();
    // a's waiting ones run one at a time, as a's running one ends.
    expect(order).toEqual(["a1", "b1"]);
    releases.get("a1")!();
    await tick();
    expect(order).toEqual(["a1", "b1", "a2"]);
    releases.get("a2")!();
    await tick();
    releases.get("a3")!();
    expect(await Promise.all(a)).toEqual(["a1", "a2", "a3"]);
  });

  it("drops a waiting task whose signal aborts, and frees its place", async () => {
    const limiter = createRenderLimiter({ concurrency: 1, maxWaiting: 1, perClient: 1, perClientWaiting: 1 });
    let release = () => {};
    const held = limiter.run("a", never, () => new Promise<void>((r) => (release = r)));
    const controller = new AbortController();
    let ran = false;
    const waiting = limiter.run("b", controller.signal, async () => {
      ran = true;
    });
    controller.abort(new Error("client gone"));
    await expect(waiting).rejects.toThrow("client gone");
    // The queue has room again and b may ask again.
    const next = limiter.run("b", never, async () => "b");
    release();
    await held;
    expect(await next).toBe("b");
    expect(ran).toBe(false);
  });
});
