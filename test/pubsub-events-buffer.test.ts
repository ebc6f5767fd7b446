// The API's side of the Pub/Sub events subscription (src/transport/pubsub-events.ts): an event that
// finds no batch under way is handed over at once, with what came in the same turn of the event
// loop; what comes while a batch is applied goes together in the next. The subscription itself is
// exercised against the emulator in pubsub-transport.test.ts.
import { expect, it } from "vitest";
import { bufferEvent, type EventBuffer, type EventMessage } from "../src/transport/pubsub-events.ts";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function message(n: number, acked: number[]): EventMessage {
  return {
    id: String(n),
    data: Buffer.from(JSON.stringify({ n })),
    ack: () => void acked.push(n),
    nack: () => {
      throw new Error(`event ${n} nacked`);
    },
  } as EventMessage;
}

function buffer(handler: EventBuffer["handler"]): EventBuffer {
  return { ctx: { stopping: false }, handler, buffered: [], handOver: undefined, handling: null };
}

it("an event that finds no batch under way is handed over in the same turn, not after a wait for more", async () => {
  const batches: unknown[][] = [];
  const acked: number[] = [];
  const b = buffer(async (events) => void batches.push(events));
  // Two of one pull arrive in one turn of the event loop: they go together.
  bufferEvent(b, message(1, acked));
  bufferEvent(b, message(2, acked));
  await turn();
  await turn();
  expect(batches).toEqual([[{ n: 1 }, { n: 2 }]]);
  expect(acked).toEqual([1, 2]);
});

it("what comes while a batch is applied waits and goes in the next batch, all together", async () => {
  const batches: unknown[][] = [];
  const acked: number[] = [];
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const b = buffer(async (events) => {
    batches.push(events);
    if (batches.length === 1) await held;
  });
  bufferEvent(b, message(1, acked));
  await turn();
  for (let n = 2; n <= 4; n++) {
    bufferEvent(b, message(n, acked));
    await turn();
  }
  expect(batches).toEqual([[{ n: 1 }]]);
  release();
  await expect.poll(() => batches.length).toBe(2);
  expect(batches[1]).toEqual([{ n: 2 }, { n: 3 }, { n: 4 }]);
  await expect.poll(() => acked).toEqual([1, 2, 3, 4]);
});
