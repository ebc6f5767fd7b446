import { useEffect, useState } from "preact/hooks";
import { type ResultOf, request } from "../../graphql.ts";
import { UpdateVideoMutation, VideoDetailsQuery } from "../../operations.ts";

type Details = NonNullable<ResultOf<typeof VideoDetailsQuery>["video"]>;
type DetailsDraft = {
  title: string;
  description: string;
  tags: string;
  externalId: string;
  metadata: { key: string; value: string }[];
};

const draftOf = (d: Details): DetailsDraft => ({
  title: d.title,
  description: d.description ?? "",
  tags: d.tags.join(", "),
  externalId: d.externalId ?? "",
  metadata: d.metadata.map(({ key, value }) => ({ key, value })),
});

/**
 * The CMS's fields (updateVideo): title, description, tags, externalId and metadata. The API's
 * ValidationError is shown under the field it names; anything else above the Save button.
 */
export function Details({ videoId, onSaved }: { videoId: string; onSaved: (title: string) => void }) {
  const [draft, setDraft] = useState<DetailsDraft | null>(null);
  const [invalid, setInvalid] = useState<{ field: string; message: string } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    request(VideoDetailsQuery, { id: videoId })
      .then((data) => data.video && setDraft(draftOf(data.video)))
      .catch((err: Error) => setMessage(err.message));
  }, [videoId]);
  if (!draft) return message ? <p class="muted">{message}</p> : null;

  const change = (patch: Partial<DetailsDraft>) => {
    setDraft({ ...draft, ...patch });
    setMessage(null);
    setSaved(false);
  };
  const setEntry = (i: number, patch: Partial<DetailsDraft["metadata"][number]>) =>
    change({ metadata: draft.metadata.map((entry, j) => (j === i ? { ...entry, ...patch } : entry)) });
  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setInvalid(null);
    setMessage(null);
    setSaved(false);
    try {
      const { updateVideo: result } = await request(UpdateVideoMutation, {
        input: {
          id: videoId,
          title: draft.title,
          description: draft.description.trim() ? draft.description : null,
          tags: draft.tags
            .split(",")
            .map((tag) => tag.trim())
            .filter(Boolean),
          externalId: draft.externalId.trim() ? draft.externalId.trim() : null,
          metadata: draft.metadata.filter((entry) => entry.key || entry.value),
        },
      });
      if (result.__typename === "UpdateVideoSuccess") {
        setDraft(draftOf(result.video));
        setSaved(true);
        onSaved(result.video.title);
      } else if (result.__typename === "ValidationError") {
        setInvalid({ field: result.field, message: result.message });
      } else setMessage(result.message);
    } catch (err) {
      setMessage((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  // The field's error, under it, and the attributes that tie the field to it.
  const problem = (field: string) => (invalid?.field === field ? invalid.message : null);
  const described = (field: string) =>
    problem(field) ? { "aria-invalid": true, "aria-describedby": `details-${field}-error` } : {};
  const fieldError = (field: string) =>
    problem(field) ? (
      <p id={`details-${field}-error`} class="error" role="alert">
        {problem(field)}
      </p>
    ) : null;
  const known = ["title", "description", "tags", "externalId", "metadata"];

  return (
    <section aria-labelledby="details-title" class="details">
      <h2 id="details-title">Details</h2>
      <form onSubmit={save}>
        <label for="details-title-input">Title</label>
        <input
          id="details-title-input"
          value={draft.title}
          onInput={(e) => change({ title: (e.target as HTMLInputElement).value })}
          {...described("title")}
        />
        {fieldError("title")}
        <label for="details-description">Description</label>
        <textarea
          id="details-description"
          rows={3}
          value={draft.description}
          onInput={(e) => change({ description: (e.target as HTMLTextAreaElement).value })}
          {...described("description")}
        />
        {fieldError("description")}
        <label for="details-tags">Tags (comma-separated)</label>
        <input
          id="details-tags"
          value={draft.tags}
          onInput={(e) => change({ tags: (e.target as HTMLInputElement).value })}
          {...described("tags")}
        />
        {fieldError("tags")}
        <label for="details-external-id">External id (your CMS's)</label>
        <input
          id="details-external-id"
          value={draft.externalId}
          onInput={(e) => change({ externalId: (e.target as HTMLInputElement).value })}
          {...described("externalId")}
        />
        {fieldError("externalId")}
        <fieldset {...described("metadata")}>
          <legend>Metadata</legend>
          {draft.metadata.map((entry, i) => (
            <div key={i} class="metadata-row">
              <label for={`details-metadata-key-${i}`}>Key {i + 1}</label>
              <input
                id={`details-metadata-key-${i}`}
                value={entry.key}
                onInput={(e) => setEntry(i, { key: (e.target as HTMLInputElement).value })}
              />
              <label for={`details-metadata-value-${i}`}>Value {i + 1}</label>
              <input
                id={`details-metadata-value-${i}`}
                value={entry.value}
                onInput={(e) => setEntry(i, { value: (e.target as HTMLInputElement).value })}
              />
              <button
                type="button"
                class="secondary"
                aria-label={`Remove metadata entry ${i + 1}`}
                onClick={() => change({ metadata: draft.metadata.filter((_, j) => j !== i) })}
              >
                Remove
              </button>
            </div>
          ))}
          <button
            type="button"
            class="secondary"
            onClick={() => change({ metadata: [...draft.metadata, { key: "", value: "" }] })}
          >
            Add metadata entry
          </button>
          {fieldError("metadata")}
        </fieldset>
        {invalid && !known.includes(invalid.field) && (
          <p role="alert" class="error">
            {invalid.field}: {invalid.message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Save details
        </button>
        <p role="status" class="muted">
          {saved ? "Saved." : ""}
        </p>
        {message && (
          <p role="alert" class="error">
            {message}
          </p>
        )}
      </form>
    </section>
  );
}
