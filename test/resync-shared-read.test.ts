import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { graphql, operationText } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const TITLE_EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { id title } } }`);

describe("after the fan-out reconnects, the subscribers of a video on one instance re-read it once", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
  });
  afterAll(() => t?.stop());

  it("three subscribers told to resync get the video's new state as one result object, from one read", async () => {
    const videoId = (await createUpload(t, "before")).id;
    const open = async () => {
      const { schema, subscribe, contextFactory, parse } = t.app.yoga.getEnveloped({
        connectionParams: { authorization: `Bearer vg_test_admin_key_not_a_secret_0123456789` },
      });
      const stream = (await subscribe({
        schema,
        document: parse(operationText(TITLE_EVENTS)),
        variableValues: { id: videoId },
        contextValue: await contextFactory(),
      })) as AsyncIterableIterator<unknown>;
      await stream.next();
      return stream;
    };
    const streams = [await open(), await open(), await open()];
    await t.app.services.db.video.update({ where: { id: videoId }, data: { title: "after" } });
    const reads: string[] = [];
    const db = t.app.services.db as unknown as { video: { findUnique: (...args: unknown[]) => Promise<unknown> } };
    const findUnique = db.video.findUnique;
    db.video.findUnique = (...args: unknown[]) => {
      reads.push(JSON.stringify(args[0]));
      return findUnique.apply(db.video, args);
    };
    try {
      const nexts = streams.map((s) => s.next());
      // What the fan-out delivers to every topic once LISTEN is back (src/events/postgres-event-target.ts).
      t.app.services.pubSub.publish("videoEvents", videoId, { kind: "resync" });
      const [a, b, c] = await Promise.all(nexts);
      expect(a!.value).toEqual({
        data: { videoEvents: { __typename: "VideoStatusEvent", video: { id: videoId, title: "after" } } },
      });
      expect(b!.value).toBe(a!.value);
      expect(c!.value).toBe(a!.value);
      expect(reads).toHaveLength(1);
    } finally {
      db.video.findUnique = findUnique;
      await Promise.all(streams.map((s) => s.return?.()));
    }
  });
});
