import { useEffect, useRef, useState } from "preact/hooks";
import { type ResultOf, request, requestWithFile, runAndReload, useLatestReload } from "../../graphql.ts";
import {
  AddAudioTrackFileMutation,
  AddAudioTrackUrlMutation,
  RemoveAudioTrackMutation,
  UpdateAudioTrackMutation,
  VideoAudioTracksQuery,
} from "../../operations.ts";

type Tracks = NonNullable<ResultOf<typeof VideoAudioTracksQuery>["video"]>;
type AudioTrack = Tracks["audioTracks"][number];

/** How often the list is read again while a track is being encoded. */
const PROCESSING_POLL_MS = 2000;

/**
 * The video's alternate audio tracks (another language, commentary, a dub), which players offer
 * beside the video's own audio once READY: add one from a file or a URL, make one the default,
 * remove one.
 */
export function AudioTracks({ videoId }: { videoId: string }) {
  const [video, setVideo] = useState<Tracks | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const load = useLatestReload(
    () => request(VideoAudioTracksQuery, { id: videoId }),
    (data) => setVideo(data.video ?? null),
    (err) => setMessage(err.message),
  );
  useEffect(() => {
    void load();
  }, [videoId]);
  const processing = video?.audioTracks.some((t) => t.status === "PROCESSING") ?? false;
  useEffect(() => {
    if (!processing) return;
    const timer = setInterval(() => void load(), PROCESSING_POLL_MS);
    return () => clearInterval(timer);
  }, [processing]);

  const makeDefault = (t: AudioTrack) =>
    runAndReload(
      async () => (await request(UpdateAudioTrackMutation, { id: t.id, input: { default: true } })).updateAudioTrack,
      setMessage,
      load,
    );
  const remove = async (t: AudioTrack) => {
    if (!confirm(`Remove the audio track "${t.name}"?`)) return;
    await runAndReload(
      async () => (await request(RemoveAudioTrackMutation, { id: t.id })).removeAudioTrack,
      setMessage,
      load,
    );
  };

  const tracks = video?.audioTracks ?? null;
  return (
    <section aria-labelledby="audio-tracks-title" class="captions">
      <h2 id="audio-tracks-title">Audio tracks</h2>
      {tracks?.length === 0 && <p class="muted">No alternate audio tracks: players play the video's own audio.</p>}
      {tracks && tracks.length > 0 && (
        <ul aria-label="Audio tracks">
          {tracks.map((t) => (
            <li key={t.id} data-testid="audio-track" data-status={t.status}>
              {t.name}{" "}
              {t.default && (
                <span class="badge" data-testid="default-audio-track">
                  default
                </span>
              )}{" "}
              <span class="muted">
                · {t.language} · {t.status.toLowerCase()}
                {t.error ? `: ${t.error}` : ""}
              </span>{" "}
              {!t.default && t.status === "READY" && (
                <button
                  type="button"
                  class="secondary"
                  aria-label={`Make ${t.name} the default audio`}
                  onClick={() => makeDefault(t)}
                >
                  Make default
                </button>
              )}{" "}
              <button
                type="button"
                class="secondary"
                aria-label={`Remove audio track ${t.name}`}
                onClick={() => remove(t)}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      {video?.status === "READY" ? (
        <AddAudioTrackForm videoId={videoId} message={message} setMessage={setMessage} onAdded={load} />
      ) : (
        message && (
          <p role="alert" class="error">
            {message}
          </p>
        )
      )}
    </section>
  );
}

const EMPTY_FORM = { name: "", language: "", url: "", isDefault: false };

/** The form that adds a track from a file or a URL; it shows the section's message (any action's refusal). */
function AddAudioTrackForm({
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
    setBusy(true);
    setMessage(null);
    try {
      const common = { videoId, name: form.name, language: form.language, default: form.isDefault };
      const result = file
        ? (await requestWithFile(AddAudioTrackFileMutation, { ...common, file })).addAudioTrack
        : (await request(AddAudioTrackUrlMutation, { input: { ...common, url: form.url } })).addAudioTrack;
      if (result.__typename === "AddAudioTrackSuccess") {
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
  const text = (name: "name" | "language" | "url", id: string, label: string, required: boolean) => (
    <>
      <label for={id}>{label}</label>
      <input
        id={id}
        required={required}
        value={form[name]}
        onInput={(e) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value })}
      />
    </>
  );

  return (
    <form onSubmit={add} aria-label="Add an audio track">
      <label for="audio-track-file">Audio file (MP3, AAC, WAV, FLAC, Ogg, M4A…)</label>
      <input
        id="audio-track-file"
        ref={fileInput}
        type="file"
        accept="audio/*,.mka,.webm"
        onChange={(e) => {
          const chosen = (e.target as HTMLInputElement).files?.[0] ?? null;
          setFile(chosen);
          if (chosen && !form.name) setForm({ ...form, name: chosen.name.replace(/\.[^.]+$/, "") });
        }}
      />
      {text("url", "audio-track-url", "…or its URL (http or https)", !file)}
      {text("name", "audio-track-name", "Track name (as players list it)", true)}
      {text("language", "audio-track-language", "Language (BCP-47, e.g. en, de-CH)", true)}
      <label class="check">
        <input
          type="checkbox"
          checked={form.isDefault}
          onChange={(e) => setForm({ ...form, isDefault: (e.target as HTMLInputElement).checked })}
        />
        Default audio (players play it unless the viewer chose otherwise)
      </label>
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Add audio track
      </button>
    </form>
  );
}
