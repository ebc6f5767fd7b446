import { useState } from "preact/hooks";
import { type ResultOf, request } from "../../graphql.ts";
import {
  AddSimulcastTargetMutation,
  type LiveStreamsQuery,
  RemoveSimulcastTargetMutation,
} from "../../live-operations.ts";

type Target = ResultOf<typeof LiveStreamsQuery>["liveStreams"][number]["simulcastTargets"][number];

/**
 * A stream's simulcast targets: each one's server, masked key, state and last error, removable, and a
 * form adding one (docs/live.md, "Simulcast"). `run` shows what a mutation answered and reloads.
 */
export function SimulcastTargets(props: {
  streamId: string;
  targets: Target[];
  run: (work: () => Promise<{ __typename: string; message?: string }>) => Promise<void>;
}) {
  const [name, setName] = useState("");
  const [url, setUrl] = useState("");
  const [streamKey, setStreamKey] = useState("");
  const id = (what: string) => `simulcast-${what}-${props.streamId}`;
  return (
    <section aria-label="Simulcast targets" class="simulcast">
      <h3>Simulcast</h3>
      {props.targets.length === 0 && <p class="muted">Not forwarded anywhere.</p>}
      {props.targets.length > 0 && (
        <ul>
          {props.targets.map((target) => (
            <li key={target.id} data-testid="simulcast-target">
              <strong>{target.name}</strong> <code>{target.url}</code> key {target.streamKey} ·{" "}
              <span aria-live="polite">{target.state}</span>
              {target.lastError && <span class="warning"> · {target.lastError}</span>}{" "}
              <button
                type="button"
                class="danger"
                onClick={() =>
                  void props.run(
                    async () => (await request(RemoveSimulcastTargetMutation, { id: target.id })).removeSimulcastTarget,
                  )
                }
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void props.run(async () => {
            const input = { liveStreamId: props.streamId, name, url, streamKey };
            const added = (await request(AddSimulcastTargetMutation, { input })).addSimulcastTarget;
            if (added.__typename === "SimulcastTarget") {
              setName("");
              setUrl("");
              setStreamKey("");
            }
            return added;
          });
        }}
      >
        <label for={id("name")}>Name</label>
        <input id={id("name")} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <label for={id("url")}>Server (rtmp://, rtmps:// or srt://)</label>
        <input
          id={id("url")}
          placeholder="rtmp://a.rtmp.youtube.com/live2"
          value={url}
          onInput={(e) => setUrl((e.target as HTMLInputElement).value)}
        />
        <label for={id("key")}>Stream key (stored encrypted, never shown again)</label>
        <input
          id={id("key")}
          type="password"
          autocomplete="off"
          value={streamKey}
          onInput={(e) => setStreamKey((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Add target</button>
      </form>
    </section>
  );
}
