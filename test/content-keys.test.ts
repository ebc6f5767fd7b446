import { describe, expect, it } from "vitest";
import { ContentKeys } from "../src/content-protection/content-keys.ts";
import { segmentGroupKey, segmentIv, segmentKeyGroup } from "../src/shared/segment-keys.ts";

const SECRET = "content keys test signing secret, 32 bytes or more";

describe("content keys at rest and the segment keys derived from them", () => {
  it("seals a fresh key that only this secret and this key id open; the sealed bytes do not hold it", () => {
    const keys = new ContentKeys(SECRET);
    const sealed = keys.create();
    const key = keys.open(sealed);
    expect(key.byteLength).toBe(16);
    expect(Buffer.from(sealed.sealedKey).includes(key)).toBe(false);
    expect(keys.open(keys.create()).equals(key)).toBe(false);
    // Another service's secret, or the sealed key moved under another id: GCM's tag refuses both.
    expect(() => new ContentKeys(`${SECRET}!`).open(sealed)).toThrow();
    const otherId = { ...sealed, keyId: new Uint8Array(keys.create().keyId) };
    expect(() => keys.open(otherId)).toThrow();
    const flipped = new Uint8Array(sealed.sealedKey);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => keys.open({ ...sealed, sealedKey: flipped })).toThrow();
  });

  it("derives one key per group of segments, none of them the content key, and each segment's number as IV", () => {
    const content = new ContentKeys(SECRET).open(new ContentKeys(SECRET).create());
    expect([0, 1, 2, 3, 4].map((n) => segmentKeyGroup(n, 2))).toEqual([0, 0, 1, 1, 2]);
    expect([0, 7, 99_999].map((n) => segmentKeyGroup(n, null))).toEqual([0, 0, 0]);
    const groups = [0, 1, 2].map((g) => segmentGroupKey(content, g).toString("hex"));
    expect(new Set(groups).size).toBe(3);
    expect(groups).not.toContain(content.toString("hex"));
    expect(segmentIv(258).toString("hex")).toBe(`${"0".repeat(28)}0102`);
  });
});
