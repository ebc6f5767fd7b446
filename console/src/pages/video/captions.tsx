import { useEffect, useRef, useState } from "preact/hooks";
import { type ResultOf, request, runAndReload, useLatestReload } from "../../graphql.ts";
import {
  AddCaptionMutation,
  GenerateCaptionsMutation,
  RemoveCaptionMutation,
  UpdateCaptionMutation,
  VideoCaptionsQuery,
} from "../../operations.ts";

type Caption = NonNullable<ResultOf<typeof VideoCaptionsQuery>["video"]>["captions"][number];

/** The flags beside a track's name; the default track has its own badge. */
const captionFlags = (c: Caption) => [c.forced && "forced", c.hearingImpaired && "SDH"].filter(Boolean).join(", ");

/** How often the section reads its tracks again while one is being generated. */
const GENERATING_POLL_MS = 2000;

/**
 * The video's caption tracks (WebVTT or SRT files, which players list from the master playlist):
 * add one from a file, generate one from the speech (English), make one the default, rename one,
 * remove one.
 */
export function Captions({ videoId }: { videoId: string }) {
  const [captions, setCaptions] = useState<Caption[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  // The track being renamed, the name typed for it, and the API's refusal of it.
  const [renaming, setRenaming] = useState<Renaming | null>(null);
  const load = useLatestReload(
    () => request(VideoCaptionsQuery, { id: videoId }),
    (data) => setCaptions(data.video?.captions ?? []),
    (err) => setMessage(err.message),
  );
  useEffect(() => {
    void load();
  }, [videoId]);
  // A generated track moves on its own: read again until none is PROCESSING.
  const generating = captions?.some((c) => c.status === "PROCESSING") ?? false;
  useEffect(() => {
    if (!generating) return;
    const timer = setInterval(() => void load(), GENERATING_POLL_MS);
    return () => clearInterval(timer);
  }, [generating, videoId]);
  const generate = () =>
    runAndReload(
      async () => (await request(GenerateCaptionsMutation, { input: { videoId, language: "en" } })).generateCaptions,
      setMessage,
      load,
    );

  const update = (id: string, input: { name?: string; default?: boolean }) =>
    runAndReload(
      async () => {
        const result = (await request(UpdateCaptionMutation, { id, input })).updateCaption;
        if (result.__typename === "UpdateCaptionSuccess") setRenaming(null);
        // A refused name is shown in the rename form, beside the name.
        if (result.__typename === "ValidationError" && input.name !== undefined) {
          setRenaming({ id, name: input.name, error: result.message });
          return { __typename: result.__typename };
        }
        return result;
      },
      setMessage,
      load,
    );
  const remove = async (c: Caption) => {
    if (!confirm(`Remove the caption track "${c.name}"?`)) return;
    await runAndReload(
      async () => (await request(RemoveCaptionMutation, { id: c.id })).removeCaption,
      setMessage,
      load,
    );
  };

  return (
    <section aria-labelledby="captions-title" class="captions">
      <h2 id="captions-title">Captions</h2>
      {captions?.length === 0 && <p class="muted">No caption tracks.</p>}
      {captions && captions.length > 0 && (
        <ul aria-label="Caption tracks">
          {captions.map((c) => (
            <CaptionTrack
              key={c.id}
              caption={c}
              renaming={renaming?.id === c.id ? renaming : null}
              setRenaming={setRenaming}
              onUpdate={(input) => update(c.id, input)}
              onRemove={() => remove(c)}
            />
          ))}
        </ul>
      )}
      <p>
        <button type="button" class="secondary" onClick={generate} disabled={generating}>
          Generate captions
        </button>{" "}
        <span class="muted">from the video's speech, in English (the only language the speech model knows)</span>
      </p>
      <AddCaptionForm videoId={videoId} message={message} setMessage={setMessage} onAdded={load} />
    </section>
  );
}

type Renaming = { id: string; name: string; error?: string };

/** One track: its file, language and flags, and its buttons (default, rename with its form, remove). */
function CaptionTrack({
  caption: c,
  renaming,
  setRenaming,
  onUpdate,
  onRemove,
}: {
  caption: Caption;
  /** This track's rename, while it is being renamed. */
  renaming: Renaming | null;
  setRenaming: (renaming: Renaming | null) => void;
  onUpdate: (input: { name?: string; default?: boolean }) => Promise<unknown>;
  onRemove: () => Promise<void>;
}) {
  return (
    <li data-testid="caption" data-default={c.default}>
      <a href={c.url}>{c.name}</a>{" "}
      {c.default && (
        <span class="badge" data-testid="default-caption">
          default
        </span>
      )}{" "}
      {c.source === "GENERATED" && (
        <span class="badge" data-testid="generated-caption">
          generated
        </span>
      )}{" "}
      <span class="muted">
        · {c.language} · {c.cueCount} cue{c.cueCount === 1 ? "" : "s"}
        {captionFlags(c) ? ` · ${captionFlags(c)}` : ""}
      </span>{" "}
      {c.status === "PROCESSING" && (
        <span data-testid="caption-progress">
          <progress max={1} value={c.progress} aria-label={`${c.name}: transcribing`} /> transcribing{" "}
          {Math.round(c.progress * 100)} %
        </span>
      )}
      {c.status === "FAILED" && (
        <span class="error" data-testid="caption-failed">
          failed: {c.error}
        </span>
      )}{" "}
      {!c.default && (
        <button
          type="button"
          class="secondary"
          aria-label={`Make ${c.name} the default track`}
          onClick={() => onUpdate({ default: true })}
        >
          Make default
        </button>
      )}{" "}
      {renaming ? (
        <form
          class="caption-rename"
          aria-label={`Rename caption ${c.name}`}
          onSubmit={(e) => {
            e.preventDefault();
            void onUpdate({ name: renaming.name });
          }}
        >
          <label for={`caption-rename-${c.id}`}>New name for {c.name}</label>
          <input
            id={`caption-rename-${c.id}`}
            required
            value={renaming.name}
            onInput={(e) => setRenaming({ id: c.id, name: (e.target as HTMLInputElement).value })}
            {...(renaming.error ? { "aria-invalid": true, "aria-describedby": `caption-rename-${c.id}-error` } : {})}
          />
          {renaming.error && (
            <p id={`caption-rename-${c.id}-error`} class="error" role="alert">
              {renaming.error}
            </p>
          )}
          <button type="submit">Save name</button>
          <button type="button" class="secondary" onClick={() => setRenaming(null)}>
            Cancel
          </button>
        </form>
      ) : (
        <button
          type="button"
          class="secondary"
          aria-label={`Rename caption ${c.name}`}
          onClick={() => setRenaming({ id: c.id, name: c.name })}
        >
          Rename
        </button>
      )}{" "}
      <button type="button" class="secondary" aria-label={`Remove caption ${c.name}`} onClick={onRemove}>
        Remove
      </button>
    </li>
  );
}

const EMPTY_FORM = { name: "", language: "", isDefault: false, forced: false, sdh: false };

/** The form that adds a track from a file; it shows the section's message (any action's refusal). */
function AddCaptionForm({
  videoId,
  message,
  setMessage,
  onAdded,
}: {
  videoId: string;
  message: string | null;
  setMessage: (message: string | null) => void;
  onAdded: () => Promise<void>;
}) {
  const [form, setForm] = useState(EMPTY_FORM);
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setMessage(null);
    try {
      // An InvalidCaptionsError's message names its line.
      const { addCaption: result } = await request(AddCaptionMutation, {
        input: {
          videoId,
          name: form.name,
          language: form.language,
          text: await file.text(),
          default: form.isDefault,
          forced: form.forced,
          hearingImpaired: form.sdh,
        },
      });
      if (result.__typename === "AddCaptionSuccess") {
        setForm(EMPTY_FORM);
        setFile(null);
        if (fileInput.current) fileInput.current.value = "";
      } else if (result.__typename === "ValidationError") setMessage(`${result.field}: ${result.message}`);
      else setMessage(result.message);
    } catch (err) {
      setMessage((err as Error).message);
    } finally {
      setBusy(false);
    }
    await onAdded();
  };
  const check = (name: "isDefault" | "forced" | "sdh", label: string) => (
    <label class="check">
      <input
        type="checkbox"
        checked={form[name]}
        onChange={(e) => setForm({ ...form, [name]: (e.target as HTMLInputElement).checked })}
      />
      {label}
    </label>
  );

  return (
    <form onSubmit={add} aria-label="Add a caption track">
      <label for="caption-file">Caption file (WebVTT or SRT, at most 1 MiB)</label>
      <input
        id="caption-file"
        ref={fileInput}
        type="file"
        accept=".vtt,.srt,text/vtt"
        required
        onChange={(e) => {
          const chosen = (e.target as HTMLInputElement).files?.[0] ?? null;
          setFile(chosen);
          if (chosen && !form.name) setForm({ ...form, name: chosen.name.replace(/\.[^.]+$/, "") });
        }}
      />
      <label for="caption-name">Track name (as players list it)</label>
      <input
        id="caption-name"
        required
        value={form.name}
        onInput={(e) => setForm({ ...form, name: (e.target as HTMLInputElement).value })}
      />
      <label for="caption-language">Language (BCP-47, e.g. en, de-CH)</label>
      <input
        id="caption-language"
        required
        value={form.language}
        onInput={(e) => setForm({ ...form, language: (e.target as HTMLInputElement).value })}
      />
      {check("isDefault", "Default track (players show it unless the viewer chose otherwise)")}
      {check("forced", "Forced (only the cues shown with subtitles off)")}
      {check("sdh", "For the deaf and hard of hearing (SDH)")}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Add caption
      </button>
    </form>
  );
}
