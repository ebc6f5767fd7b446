import { afterEach, describe, expect, it, vi } from "vitest";
import { createStopSignals } from "../src/shared/stop-signals.ts";

// The helper alone, with its exit and the clock replaced; test/embedded-start.test.ts sends the API real Ctrl-Cs.
describe("createStopSignals: a second signal hands jobs back, a third exits", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function setUp(canHandBack = true) {
    const said: string[] = [];
    const exits: number[] = [];
    const handBacks: number[] = [];
    const stops = createStopSignals({
      log: { warn: (message) => said.push(message) },
      canHandBack: () => canHandBack,
      handBack: () => handBacks.push(Date.now()),
      handBackLine: (reason) => `${reason} again: handing back`,
      hurriedExitMs: 10_000,
      exit: (code) => exits.push(code),
    });
    return { stops, said, exits, handBacks };
  }

  it("runs the stop once, hands back at the second, exits at the third", () => {
    vi.useFakeTimers();
    const { stops, said, exits, handBacks } = setUp();
    const stop = vi.fn();
    expect(stops.stopping).toBe(false);
    stops.received("SIGINT", stop);
    expect(stop).toHaveBeenCalledTimes(1);
    expect(stops.stopping).toBe(true);
    expect(handBacks).toHaveLength(0);

    stops.received("SIGINT", stop);
    expect(stop).toHaveBeenCalledTimes(1);
    expect(handBacks).toHaveLength(1);
    expect(said).toEqual(["SIGINT again: handing back"]);
    expect(exits).toEqual([]);

    stops.received("SIGTERM", stop);
    expect(exits).toEqual([1]);
    expect(said.at(-1)).toBe("another signal: exiting now");
    expect(handBacks).toHaveLength(1);
  });

  it("exits once the hurried stop has taken longer than its bound", () => {
    vi.useFakeTimers();
    const { stops, said, exits } = setUp();
    stops.received("SIGTERM", () => {});
    stops.received("SIGTERM", () => {});
    vi.advanceTimersByTime(9_999);
    expect(exits).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(exits).toEqual([1]);
    expect(said.at(-1)).toBe("shutdown still not done: exiting now");
  });

  it("exits at the second signal when there is nothing to hand back", () => {
    const { stops, said, exits, handBacks } = setUp(false);
    stops.received("SIGINT", () => {});
    stops.received("SIGINT", () => {});
    expect(handBacks).toEqual([]);
    expect(exits).toEqual([1]);
    expect(said).toEqual(["another signal: exiting now"]);
  });
});
