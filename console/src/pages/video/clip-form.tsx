import { useState } from "preact/hooks";
import { request } from "../../graphql.ts";
import type { Video } from "../../live-video.ts";
import { CreateClipMutation } from "../../operations.ts";
import { navigate } from "../../router.tsx";

/**
 * Cuts a clip (createClip) from a range of this READY video; *Set start* and *Set end* take the
 * player's current time. The clip opens on its own page, which follows its encode.
 */
export function ClipForm({ video, player }: { video: Video; player: { current: HTMLVideoElement | null } }) {
  const [range, setRange] = useState({ start: "", end: "" });
  const [title, setTitle] = useState("");
  const [invalid, setInvalid] = useState<{ field: string; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const now = () => (player.current ? String(Math.round(player.current.currentTime * 1000) / 1000) : null);
  const problem = (field: string) => (invalid?.field === field ? invalid.message : null);
  const bound = (field: "start" | "end", label: string) => (
    <div class="clip-bound">
      <label for={`clip-${field}`}>{label} (seconds)</label>
      <input
        id={`clip-${field}`}
        type="number"
        min={0}
        step="any"
        required
        value={range[field]}
        onInput={(e) => setRange({ ...range, [field]: (e.target as HTMLInputElement).value })}
        {...(problem(field) ? { "aria-invalid": true, "aria-describedby": `clip-${field}-error` } : {})}
      />
      <button
        type="button"
        class="secondary"
        disabled={!video.playable}
        onClick={() => {
          const at = now();
          if (at !== null) setRange({ ...range, [field]: at });
        }}
      >
        Set {field}
      </button>
      {problem(field) && (
        <p id={`clip-${field}-error`} role="alert" class="error">
          {problem(field)}
        </p>
      )}
    </div>
  );
  return (
    <section aria-labelledby="clip-title" class="clip">
      <h2 id="clip-title">Clip</h2>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setInvalid(null);
          try {
            const { createClip: result } = await request(CreateClipMutation, {
              input: {
                sourceVideoId: video.id,
                start: Number(range.start),
                end: Number(range.end),
                ...(title.trim() && { title }),
              },
            });
            if (result.__typename === "CreateClipSuccess") navigate(`/videos/${result.video.id}`);
            else setInvalid({ field: "field" in result ? result.field : "", message: result.message });
          } catch (err) {
            setInvalid({ field: "", message: (err as Error).message });
          } finally {
            setBusy(false);
          }
        }}
      >
        <p class="muted">Play to a moment, then set the start or the end there, or type the seconds.</p>
        {bound("start", "Start")}
        {bound("end", "End")}
        <label for="clip-title-input">Clip title (default: this video's, with “(clip)”)</label>
        <input id="clip-title-input" value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        {invalid && invalid.field !== "start" && invalid.field !== "end" && (
          <p role="alert" class="error">
            {invalid.field ? `${invalid.field}: ` : ""}
            {invalid.message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create clip
        </button>
      </form>
    </section>
  );
}
