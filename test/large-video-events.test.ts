import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { notificationParts, PostgresEventTarget } from "../src/events/postgres-event-target.ts";
import { createVideoPubSub, variantSnapshot, videoSnapshot } from "../src/events/video-events.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) {
  __typename video { title status error }
  ... on VariantProgressEvent { variant { name progress } fps }
  ... on VariantStatusEvent { variant { name status } } } }`);

// Characters of 1 to 4 UTF-8 bytes, so that a cut between parts can fall inside any of them.
const LONG_TEXT = "aé€😀".repeat(2500);

describe("video events larger than one NOTIFY reach the subscribers of every API instance", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
  });
  afterAll(() => t?.stop());

  it("a video whose row is far over 8000 bytes: its status, progress and variant events published by another \
instance arrive whole and in order, with a small event after them", async () => {
    const db = t.app.services.db;
    const videoId = (await createUpload(t, "large row")).id;
    const variant = await db.variant.create({
      data: { videoId, name: "720p", kind: "VIDEO", bandwidth: 3_000_000, codecs: "avc1.64001f,mp4a.40.2" },
    });
    const subscription = collectSubscription(t.wsClient(), EVENTS, { id: videoId });
    await expect.poll(() => subscription.events.length, { timeout: 10_000 }).toBe(1);

    const video = await db.video.update({
      where: { id: videoId },
      data: { status: "PROCESSING", error: LONG_TEXT },
    });
    const snapshot = videoSnapshot(video);
    expect(Buffer.byteLength(JSON.stringify(snapshot))).toBeGreaterThan(20_000);

    // Another API instance: its own fan-out connection to the same database.
    const otherInstance = new PostgresEventTarget<never>(t.database.url);
    await otherInstance.start();
    try {
      const pubSub = createVideoPubSub(otherInstance);
      pubSub.publish("videoEvents", videoId, { kind: "status", video: snapshot });
      pubSub.publish("videoEvents", videoId, {
        kind: "variantProgress",
        video: snapshot,
        variant: { ...variantSnapshot(variant), progress: 42 },
        fps: 30,
        speed: 1.5,
        etaSeconds: 12,
      });
      pubSub.publish("videoEvents", videoId, {
        kind: "variantStatus",
        video: snapshot,
        variant: { ...variantSnapshot(variant), status: "READY" },
      });
      const ready = videoSnapshot(
        await db.video.update({ where: { id: videoId }, data: { status: "READY", error: null } }),
      );
      pubSub.publish("videoEvents", videoId, { kind: "status", video: ready });
      const events = await subscription.done;
      expect(events.slice(1)).toEqual([
        {
          videoEvents: {
            __typename: "VideoStatusEvent",
            video: { title: "large row", status: "PROCESSING", error: LONG_TEXT },
          },
        },
        {
          videoEvents: {
            __typename: "VariantProgressEvent",
            video: { title: "large row", status: "PROCESSING", error: LONG_TEXT },
            variant: { name: "720p", progress: 42 },
            fps: 30,
          },
        },
        {
          videoEvents: {
            __typename: "VariantStatusEvent",
            video: { title: "large row", status: "PROCESSING", error: LONG_TEXT },
            variant: { name: "720p", status: "READY" },
          },
        },
        {
          videoEvents: { __typename: "VideoStatusEvent", video: { title: "large row", status: "READY", error: null } },
        },
      ]);
    } finally {
      await otherInstance.close();
    }
  });

  it("a burst dispatched at once (1,200 events, some over 8000 bytes, some equal) reaches another instance whole, \
every one, in order", async () => {
    const sender = new PostgresEventTarget<never>(t.database.url);
    const receiver = new PostgresEventTarget<never>(t.database.url);
    await Promise.all([sender.start(), receiver.start()]);
    try {
      const received: unknown[] = [];
      (receiver as EventTarget).addEventListener("burst", (event) => received.push((event as CustomEvent).detail));
      const sent = Array.from({ length: 1200 }, (_, i) =>
        i % 100 === 7 ? { i, text: LONG_TEXT } : i % 100 === 9 ? { equal: true } : { i },
      );
      for (const detail of sent) sender.dispatchEvent(new CustomEvent("burst", { detail }) as never);
      await expect.poll(() => received.length, { timeout: 10_000 }).toBe(sent.length);
      expect(received).toEqual(sent);
    } finally {
      await Promise.all([sender.close(), receiver.close()]);
    }
  });

  it("a snapshot is its row as JSON gives it back, without the CMS's fields or a relation the read included", async () => {
    const db = t.app.services.db;
    const videoId = (await createUpload(t, "snapshot")).id;
    await db.variant.create({
      data: { videoId, name: "360p", kind: "VIDEO", bandwidth: 800_000, codecs: "avc1.64001e,mp4a.40.2" },
    });
    const video = await db.video.update({
      where: { id: videoId },
      data: {
        description: "a CMS's text",
        metadata: { shelf: 3 },
        tags: ["quiz"],
        externalId: "cms-1",
        duration: 12.5,
        storyboard: { tiles: [{ x: 0, y: 0 }] },
        chapters: [{ title: "Intro", startTime: 0 }],
        uploadSize: 1234n,
      },
      include: { variants: true },
    });
    const { description, metadata, tags, externalId, variants, ...columns } = video;
    const asJson = (row: object) =>
      JSON.parse(JSON.stringify(row, (_, value) => (typeof value === "bigint" ? Number(value) : value)));
    const snapshot = videoSnapshot(video);
    expect(snapshot).toEqual(asJson(columns));
    expect(snapshot).not.toHaveProperty("variants");
    expect(snapshot.uploadSize).toBe(1234);
    // A JSON column is the snapshot's own copy: a change to the row read does not reach what was published.
    expect(snapshot.storyboard).not.toBe(video.storyboard);
    expect(variantSnapshot(variants[0]!)).toEqual(asJson(variants[0]!));
  });

  it("an event's NOTIFY parts each fit in one NOTIFY, are text on their own, and join to the event", () => {
    for (const text of ["x".repeat(7800), "😀".repeat(2000), LONG_TEXT, LONG_TEXT.repeat(4)]) {
      const payload = JSON.stringify({ t: "topic", d: text });
      const parts = notificationParts(payload, "sender.1");
      for (const part of parts) {
        expect(Buffer.byteLength(part)).toBeLessThanOrEqual(7900);
        expect(part).not.toContain("\uFFFD");
      }
      if (Buffer.byteLength(payload) <= 7900) expect(parts).toEqual([payload]);
      else expect(parts.map((p) => p.replace(/^part:[^:]+:\d+:\d+:/, "")).join("")).toBe(payload);
    }
  });
});
