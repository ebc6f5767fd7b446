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
    // What went beyond the bounds and was never published (2.5 s to 9 s) is lost. A reader naming no
    // point once the encode published (a run's sample) is told of none: its run's encode, which
    // names its point, is (below).
    expect(feed.attach(late.res)).toBe(0);
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

  it("miss what lies between the point a run names and what the feed holds, however far the encode's reports lag", () => {
    const feed = new LiveFeed();
    feed.push(packet("video header", 0));
    publish(feed, 0, 4000);
    // The encode's last report said 2 s; its rungs' playlists in storage list 4 s (it died before
    // reporting them). Then nothing is published for 40 s: the feed keeps the last 30 s.
    feed.published(2);
    publish(feed, 4000, 44_000);
    const run = reader();
    // A run naming 4 s misses 4 s to 13 s, not 2 s to 13 s: the 2 s it would miss by the report are published.
    expect(feed.attach(run.res, 4)).toBeCloseTo(9, 5);
    expect(run.frames()[0]).toEqual([4000, 130]);
    // Its ffmpeg restarts before it published more, and a report of 2 s still in flight arrives:
    // asked again from 4 s, nothing more is missed (the loss is said once).
    feed.published(2);
    const again = reader();
    expect(feed.attach(again.res, 4)).toBe(0);
    expect(again.frames()[0]).toEqual([4000, 130]);
  });

  it("tell each run taking over what its recording lacks, whatever its reports lag and however often it restarts (a model of 300 broadcasts)", () => {
    // A seeded model: a publisher at 10 fps (a keyframe each 1 or 2 s); an encode that publishes 2 s
    // segments of what its feed gives it from its point, stalls for 15-40 s now and then (a full work
    // dir), restarts (asking its feed from where its published media ends), and reports what it
    // published late and out of order. At each ask, what the feed says it misses is what the
    // recording lacks beyond what earlier asks said: the publisher's frames between the one the
    // encode would publish next (after its last published one, or the first an earlier ask gave it)
    // and the first this ask gives.
    let state = 1;
    const random = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 32;
    };
    const wrong: string[] = [];
    for (let seed = 1; seed <= 300; seed++) {
      state = seed;
      const feed = new LiveFeed();
      feed.push(packet("video header", 0));
      const gop = random() < 0.5 ? 1000 : 2000;
      let run = reader();
      feed.attach(run.res);
      let point = 0;
      let next = 1;
      const reports: number[] = [];
      let stalledUntil = -1;
      for (let step = 0; step < 900 && wrong.length === 0; step++) {
        const ms = step * 100;
        feed.push(packet(ms % gop === 0 ? "keyframe" : "frame", ms, step + 1));
        if (random() < 0.003) stalledUntil = step + 150 + Math.floor(random() * 250);
        const given = run.frames().filter(([dts]) => dts >= point * 1000);
        if (step >= stalledUntil && given.some(([dts]) => dts >= (point + 2) * 1000)) {
          next = Math.max(next, ...given.filter(([dts]) => dts < (point + 2) * 1000).map(([, f]) => f + 1));
          point += 2;
          reports.push(point);
        }
        if (reports.length > 0 && random() < 0.3)
          feed.published(reports[reports.length - 1 - Math.floor(random() * Math.min(reports.length, 4))]!);
        if (random() < 0.01) {
          run = reader();
          const missed = feed.attach(run.res, point);
          const first = run.frames().find(([dts]) => dts >= point * 1000);
          const lacks = first ? Math.max(0, first[1] - next) / 10 : 0;
          if (first) next = first[1];
          if (Math.abs(missed - lacks) > 0.001 || (first && missed > 0 && first[0] !== point * 1000))
            wrong.push(`seed ${seed}, ${ms} ms: said ${missed} s, lacks ${lacks} s, first picture ${first}`);
        }
      }
    }
    expect(wrong).toEqual([]);
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

describe("a live feed's simulcast forwarders", () => {
  it("start at the newest keyframe from 0, never count as the encode's reader, and only a slow one is cut off", () => {
    const feed = new LiveFeed();
    let readerGone = 0;
    feed.onReaderGone(() => readerGone++);
    feed.push(packet("metadata", 0));
    feed.push(packet("video header", 0));
    const encode = reader();
    feed.attach(encode.res);
    publish(feed, 0, 2500);
    const target = reader();
    feed.attachForwarder(target.res);
    // From the keyframe at 2 s, timestamped from 0 there.
    expect(target.mediaTags()[0]).toEqual([9, 0]);
    expect(target.mediaTags()).toHaveLength(5);
    expect(feed.readerCount).toBe(1);
    expect(feed.forwarderCount).toBe(1);
    // A target whose backlog passed 4 MiB (it stopped taking the stream) is cut off, alone.
    const slow = reader();
    let destroyed = false;
    Object.assign(slow.res, { destroy: () => (destroyed = true) });
    feed.attachForwarder(slow.res);
    Object.assign(slow.res, { writableLength: 5 * 1024 * 1024 });
    publish(feed, 2500, 3000);
    expect(destroyed).toBe(true);
    expect(feed.forwarderCount).toBe(1);
    expect(encode.mediaTags()).toHaveLength(30);
    expect(target.mediaTags()).toHaveLength(10);
    // Neither a forwarder's going nor its cut is the encode's reader going (no takeover for it).
    expect(readerGone).toBe(0);
    feed.end();
    expect(feed.forwarderCount).toBe(0);
  });
});
