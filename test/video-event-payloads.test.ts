import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encoderFigures } from "../src/events/video-events.ts";
import { parseWorkerEvent } from "../src/protocol/worker-messages.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";

describe("what a VariantProgressEvent carries of the worker's job.progress", () => {
  it("the encoder's figures as the worker sent them, none of the event's envelope nor what the API applies to rows", () => {
    const event = parseWorkerEvent({
      v: PROTOCOL_VERSION,
      type: "job.progress",
      jobId: randomUUID(),
      attempt: 1,
      seq: 3,
      workerId: "worker-1",
      runId: randomUUID(),
      at: new Date().toISOString(),
      progress: 0.5,
      fps: 48.5,
      speed: 2.1,
      etaSeconds: 7,
      variants: [{ name: "360p", progress: 0.5, segmentCount: 2 }],
    });
    if (event.type !== "job.progress") throw new Error(`parsed as ${event.type}`);
    expect(encoderFigures(event)).toEqual({ fps: 48.5, speed: 2.1, etaSeconds: 7 });
  });
});
