import { describe, expect, it } from "vitest";
import { LiveFeed } from "../src/live/feed.ts";
import { packet, publish, reader } from "./support/live-feed-packets.ts";

describe("a live feed's readers", () => {
  it("get what the encode has not published yet, from the keyframe at or before where it ended; from the first keyframe before it reports any", () => {
    const feed = new LiveFeed();
    feed.push(packet("metadata", 0));
    feed.push(packet("video header", 0));
    // Before a keyframe, nothing a decoder can start on.
    feed.push(packet("frame", -100));
    publish(feed, 0, 3000);
    // A worker that first sampled the opening joins 3 s in: its encode still starts at the first keyframe.
    const early = reader();
    feed.attach(early.res);
    const first = early.mediaTags();
    expect(first).toHaveLength(30);
    expect(first[0]).toEqual([9, 0]);
    // Its encode published 2.5 s: a run taking the broadcast over joins at the keyframe at 2 s.
    feed.published(2.5);
    const taker = reader();
    // It misses nothing: the feed kept all its encode had not published.
    expect(feed.attach(taker.res)).toBe(0);
    // Its timestamps are the encode's media time: where the published media ends is found on them.
    expect(taker.mediaTags().map(([, dts]) => dts)).toEqual([
      2000, 2100, 2200, 2300, 2400, 2500, 2600, 2700, 2800, 2900,
    ]);
    // A run that says where its published media ends (x-videograph-feed-from: its rungs published
    // more than the encode last reported) gets it from the keyframe at or before that point; one
    // that asks for less than the feed holds, all it holds.
    publish(feed, 3000, 4000);
    const asking = reader();
    expect(feed.attach(asking.res, 3.5)).toBe(0);
    expect(asking.mediaTags()[0]).toEqual([9, 3000]);
    expect(asking.mediaTags()).toHaveLength(10);
    const behind = reader();
    feed.attach(behind.res, 1);
    expect(behind.mediaTags()[0]).toEqual([9, 2000]);
    // Nothing published for a long while: the oldest media goes beyond 30 s, a group of pictures at a time.
    publish(feed, 4000, 40_000);
    const late = reader();
    // A run joining now misses what went beyond the bounds and was never published: 2.5 s to 9 s.
    expect(feed.attach(late.res)).toBeCloseTo(6.5, 5);
    expect(late.mediaTags()).toHaveLength(310);
    // The early reader got every tag as it came.
    expect(early.mediaTags()).toHaveLength(400);
    expect(feed.replayBytes).toBe(310 * 6);
    expect(feed.receivedSeconds).toBeCloseTo(39.9, 5);
    // A run taking over that says its published media ends at 2.5 s gets what is kept from there on
    // its media time: the 6.5 s lost are not a hole in its timeline (a recording as long as the sent
    // less what it lacks); what it reports published from then on maps to the feed's own timeline.
    const taking = reader();
    expect(feed.attach(taking.res, 2.5)).toBeCloseTo(6.5, 5);
    expect(taking.mediaTags().slice(0, 2)).toEqual([
      [9, 2500],
      [9, 2600],
    ]);
    expect(feed.receivedSeconds).toBeCloseTo(33.4, 5);
    feed.published(12.5);
    const next = reader();
    feed.attach(next.res, 12.5);
    expect(next.mediaTags()[0]).toEqual([9, 12_500]);
  });

  it("of a feed that continues a broadcast published from another feed get its media after what was published", () => {
    // An instance adopted the broadcast (its holder died): its encode had published 7.5 s elsewhere.
    const feed = new LiveFeed({ continuesBroadcast: true });
    feed.push(packet("video header", 0));
    publish(feed, 0, 2000);
    const run = reader();
    expect(feed.attach(run.res, 7.5)).toBe(0);
    expect(run.mediaTags().slice(0, 2)).toEqual([
      [9, 7500],
      [9, 7600],
    ]);
    // Its encode reports 8.7 s published: 1.2 s of this feed's; a run taking over joins at its keyframe at 1 s.
    feed.published(8.7);
    expect(feed.receivedSeconds).toBeCloseTo(9.4, 5);
    const taker = reader();
    feed.attach(taker.res, 8.7);
    expect(taker.mediaTags()[0]).toEqual([9, 8500]);
  });

  it("of a feed that ended get what it held, then its end; let go, it holds nothing", () => {
    const feed = new LiveFeed();
    feed.push(packet("video header", 0));
    publish(feed, 0, 5000);
    feed.published(3.2);
    feed.end();
    // A run taking the broadcast over after its publisher stopped: the tail from the keyframe at 3 s.
    const taker = reader();
    let ended = false;
    (taker.res as unknown as { end: () => void }).end = () => {
      ended = true;
    };
    expect(feed.attach(taker.res)).toBe(0);
    expect(taker.mediaTags()).toHaveLength(20);
    expect(ended).toBe(true);
    expect(feed.readerCount).toBe(0);
    feed.release();
    expect(feed.replayBytes).toBe(0);
  });
});
