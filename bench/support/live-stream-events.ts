import { wsClientAt } from "../../test/support/app.ts";

/** A stream's state and its encode's health, as `liveStreamEvents` sends them to the benches. */
export interface LiveStreamEventSample {
  status: string;
  health: { speed: number | null; behindSeconds: number | null } | null;
}

/**
 * Follows a live stream's events over graphql-ws on the API at `api`: `onEvent` hears each one; an
 * error is logged. Resolves with the client, to dispose of once the broadcast is over.
 */
export function followLiveStream(
  api: string,
  streamId: string,
  onEvent: (event: LiveStreamEventSample) => void,
  log: (line: string) => void,
): ReturnType<typeof wsClientAt> {
  const client = wsClientAt(api);
  client.subscribe(
    {
      query: `subscription ($id: ID!) { liveStreamEvents(id: $id) { status health { speed behindSeconds } } }`,
      variables: { id: streamId },
    },
    {
      next: (msg) => {
        const event = (msg.data as { liveStreamEvents?: LiveStreamEventSample } | null)?.liveStreamEvents;
        if (event) onEvent(event);
      },
      error: (err) => log(`liveStreamEvents: ${JSON.stringify(err)}`),
      complete: () => {},
    },
  );
  return client;
}
