import { Repeater } from "graphql-yoga";
import type { LiveStream } from "../generated/prisma/client.ts";
import type { LiveRenditionHealth } from "../protocol/live-messages.ts";
import type { LiveContext } from "./live-context.ts";

/** A live encode's health as the worker last reported it (`live.progress`). */
export interface LiveHealth {
  mediaSeconds: number;
  fps: number | null;
  speed: number | null;
  segments: number;
  behindSeconds: number | null;
  /** Input bit rate over the broadcast so far, from the bytes the ingest received. */
  inputBitrate: number | null;
  /** The publisher's keyframe interval (seconds) and frame rate, over its last group of pictures. */
  inputKeyframeInterval: number | null;
  inputFps: number | null;
  /** Each rendition's segments, bit rate and whether it is copied (none from workers before they reported it). */
  renditions: LiveRenditionHealth[];
}

/** What `liveStreamEvents` yields: the stream as it is now, and the encode's health while live. */
export interface LiveStreamEvent {
  stream: LiveStream;
  health: LiveHealth | null;
}

const topic = (streamId: string) => `liveStream:${streamId}`;

/** Tells the stream's subscribers on every API instance (the fan-out) that it changed, or how its encode is doing. */
export function announce(ctx: LiveContext, streamId: string, health: LiveHealth | null = null): void {
  ctx.target.dispatchEvent(new CustomEvent(topic(streamId), { detail: { health } }));
}

/** A stream's events: its state now, then each change and each health sample, until `return()`. */
export function followStream(ctx: LiveContext, streamId: string): AsyncIterableIterator<LiveStreamEvent> {
  return new Repeater<LiveStreamEvent>(async (push, stop) => {
    let queue = Promise.resolve();
    const send = (health: LiveHealth | null) => {
      queue = queue
        .then(async () => {
          const stream = await ctx.db.liveStream.findUnique({ where: { id: streamId } });
          if (!stream) return stop();
          await push({ stream, health });
        })
        .catch((err) => stop(err));
    };
    const onEvent = (event: Event) =>
      send((event as CustomEvent<{ health: LiveHealth | null }>).detail?.health ?? null);
    ctx.target.addEventListener(topic(streamId), onEvent);
    send(null);
    await stop;
    ctx.target.removeEventListener(topic(streamId), onEvent);
  });
}
