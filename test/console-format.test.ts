import { describe, expect, it } from "vitest";
import { sharePercents } from "../console/src/format.ts";

/** The console's formatting of figures (console/src/format.ts), run in Node. */
describe("sharePercents: whole percents of shares that add up to 100", () => {
  it("gives the points flooring loses to the largest remainders, the earlier first on a tie", () => {
    expect(sharePercents([0.735, 0.265])).toEqual([74, 26]);
    expect(sharePercents([1 / 3, 1 / 3, 1 / 3])).toEqual([34, 33, 33]);
    expect(sharePercents([0.571, 0.286, 0.143])).toEqual([57, 29, 14]);
    expect(sharePercents([0.5, 0.3, 0.2])).toEqual([50, 30, 20]);
    expect(sharePercents([1])).toEqual([100]);
    expect(sharePercents([])).toEqual([]);
    expect(sharePercents([0, 0])).toEqual([0, 0]);
  });

  it("adds up to 100 for any shares of one whole, each within a point of its exact percent", () => {
    let seed = 15;
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 2000; n++) {
      const weights = Array.from({ length: 1 + Math.floor(next() * 10) }, next);
      const total = weights.reduce((a, b) => a + b, 0);
      const shares = weights.map((w) => w / total);
      const percents = sharePercents(shares);
      expect(percents.reduce((a, b) => a + b, 0)).toBe(100);
      percents.forEach((p, i) => {
        expect(Math.abs(p - shares[i]! * 100)).toBeLessThan(1);
      });
    }
  });
});
