import type { ExecutionResult } from "graphql";
import { describe, expect, it } from "vitest";
import { Audience, type SubscriptionSink } from "../src/http/shared-subscription-results.ts";

describe("the subscribers who share a subscription's results (Audience)", () => {
  it("executes their events one after another, so a field read when its event is executed never goes back", async () => {
    // What the resolvers read when an event is executed, as a video's chunks done is read from its jobs.
    let state = 1;
    const audience = new Audience(
      async (event) => {
        // The first event's execution is slow (say, it waits for a database connection).
        if (event === "first") await new Promise((r) => setTimeout(r, 100));
        return { data: { event, state } } as ExecutionResult;
      },
      () => {},
    );
    let sink: SubscriptionSink<unknown> | undefined;
    const stream = {
      next: async () => ({ value: "head", done: false as const }),
      return: async () => ({ value: undefined, done: true as const }),
      attach: (s: SubscriptionSink<unknown>) => {
        sink = s;
      },
    };
    const delivered: ExecutionResult[] = [];
    const member = audience.join(stream, { next: (result) => delivered.push(result) });
    expect((await member.next()).value).toMatchObject({ data: { event: "head", state: 1 } });
    // graphql-ws asks for the next result: the member attaches to its stream and waits.
    const waiting = member.next();
    sink!.next("first");
    sink!.next("second");
    // The state changes while the first event executes, after the second came.
    setTimeout(() => {
      state = 2;
    }, 30);
    await expect.poll(() => delivered.length, { timeout: 2000 }).toBe(2);
    expect(delivered.map((r) => r.data)).toEqual([
      { event: "first", state: 2 },
      { event: "second", state: 2 },
    ]);
    await member.return(undefined);
    expect(await waiting).toEqual({ value: undefined, done: true });
  });
});
