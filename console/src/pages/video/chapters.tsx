import { useEffect, useState } from "preact/hooks";
import { chapterLines, type PlayerChapter, parseChapterLines } from "../../chapters.tsx";
import { request } from "../../graphql.ts";
import { SetChaptersMutation, VideoChaptersQuery } from "../../operations.ts";

/** The video's chapters for its player: read when it turns playable or changes state, and after an edit. */
export function useChapters(videoId: string, playable: boolean, status: string | undefined) {
  const [chapters, setChapters] = useState<{ url: string | null; list: PlayerChapter[] } | null>(null);
  const load = () =>
    request(VideoChaptersQuery, { id: videoId })
      .then((data) => setChapters(data.video ? { url: data.video.chaptersUrl, list: data.video.chapters } : null))
      .catch(() => setChapters(null));
  useEffect(() => {
    if (playable) void load();
  }, [videoId, playable, status]);
  return { chapters, reload: load };
}

/**
 * The video's chapters as lines of `TIME TITLE` (1:30 Title): saved whole (an empty text removes
 * them); the API's refusal is shown beside the text, naming the line.
 */
export function Chapters({
  videoId,
  chapters,
  onSaved,
}: {
  videoId: string;
  chapters: readonly PlayerChapter[];
  onSaved: () => void;
}) {
  const [text, setText] = useState(chapterLines(chapters));
  const [message, setMessage] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => setText(chapterLines(chapters)), [chapters]);

  const save = async (e: Event) => {
    e.preventDefault();
    const parsed = parseChapterLines(text);
    if ("error" in parsed) return setMessage(parsed.error);
    setSaving(true);
    setMessage(null);
    try {
      const result = (await request(SetChaptersMutation, { input: { videoId, chapters: parsed.chapters } }))
        .setChapters;
      if (result.__typename === "SetChaptersSuccess") {
        onSaved();
        setMessage("Saved.");
      } else setMessage(refusal(result, parsed.chapters.length));
    } catch (err) {
      setMessage((err as Error).message);
    } finally {
      setSaving(false);
    }
  };

  return (
    <section aria-labelledby="chapters-title">
      <h2 id="chapters-title">Chapters</h2>
      <form onSubmit={save}>
        <label>
          One chapter a line: its start and its title (<code>0:00 Intro</code>, <code>1:30 Part two</code>)
          <textarea
            rows={Math.min(12, Math.max(3, chapters.length + 1))}
            value={text}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            data-testid="chapters-text"
          />
        </label>
        <button type="submit" disabled={saving}>
          Save chapters
        </button>{" "}
        {message && (
          <span role="status" data-testid="chapters-message">
            {message}
          </span>
        )}
      </form>
    </section>
  );
}

/** The API's refusal, with the line it names (`chapters.3.title` is the fourth chapter's line). */
function refusal(result: { __typename: string; message?: string; field?: string }, count: number): string {
  const index = Number(result.field?.split(".")[1]);
  const named = result.message?.startsWith("Chapter ");
  const where = !named && Number.isInteger(index) && index < count ? `Chapter ${index + 1}: ` : "";
  return `${where}${result.message ?? result.__typename}`;
}
