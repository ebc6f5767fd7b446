import { useEffect, useState } from "preact/hooks";
import { AssetPicker, useAssets } from "../asset-picker.tsx";
import { request } from "../graphql.ts";
import { CreateVideoFromUrlMutation, RenderCompositionMutation, RenderManimMutation } from "../operations.ts";
import { navigate, useTitle } from "../router.tsx";
import { useDraft } from "../session.ts";
import { creationOptionsInput, DEFAULT_VIDEO_OPTIONS, VideoOptionsFields } from "../video-options.tsx";

const EXAMPLE_SCENE = `from manim import *

class Hello(Scene):
    def construct(self):
        square = Square()
        self.play(Create(square))
        self.play(square.animate.rotate(PI / 4))
`;

const EXAMPLE_CSV = `What is 2 + 2?,3,4,5,6,B
Which planet is largest?,Mars,Venus,Jupiter,Earth,C`;

type Result = { __typename: string; message?: string; field?: string; video?: { id: string } };

/** Runs a mutation that creates a video; on success opens the video, which follows it live. */
function useSubmit() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (run: () => Promise<Result>) => {
    setBusy(true);
    setError(null);
    try {
      const result = await run();
      if (result.video) navigate(`/videos/${result.video.id}`);
      else setError(`${result.field ? `${result.field}: ` : ""}${result.message ?? result.__typename}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, submit };
}

const value = (e: Event) => (e.target as HTMLInputElement).value;

/** Forms that make a video from a Manim scene, a quiz composition or a URL. */
export function SourcesPage() {
  useTitle("Sources");
  // "Edit and retry" on a failed render's page opens this page at the form's code (#manim-code, #quiz-csv).
  useEffect(() => {
    const field = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    field?.scrollIntoView({ block: "center" });
    field?.focus();
  }, []);
  return (
    <section aria-labelledby="sources-title">
      <h1 id="sources-title">Make a video from a source</h1>
      <QuizForm />
      <ManimForm />
      <UrlForm />
    </section>
  );
}

function Failure({ error }: { error: string | null }) {
  return error ? (
    <p role="alert" class="error">
      {error}
    </p>
  ) : null;
}

function ManimForm() {
  const [draft, change] = useDraft("manim", {
    title: "Manim scene",
    code: EXAMPLE_SCENE,
    sceneName: "Hello",
    quality: "LOW" as "LOW" | "MEDIUM" | "HIGH" | "FOURK",
    options: DEFAULT_VIDEO_OPTIONS,
  });
  const { title, code, sceneName, quality, options } = draft;
  const { error, busy, submit } = useSubmit();
  return (
    <form
      class="card"
      aria-labelledby="manim-title"
      onSubmit={(event) => {
        event.preventDefault();
        void submit(async () => {
          const data = await request(RenderManimMutation, {
            input: { title, code, sceneName, quality, ...creationOptionsInput(options) },
          });
          return data.renderManim;
        });
      }}
    >
      <h2 id="manim-title">Manim scene</h2>
      <label for="manim-title-input">Title</label>
      <input id="manim-title-input" required value={title} onInput={(e) => change({ title: value(e) })} />
      <label for="manim-code">Python code</label>
      <textarea
        id="manim-code"
        class="code"
        rows={12}
        spellcheck={false}
        required
        value={code}
        onInput={(e) => change({ code: value(e) })}
        onKeyDown={(event) => {
          // Tab indents in the editor; Escape then Tab leaves it (keyboard users are not trapped).
          if (event.key !== "Tab" || event.shiftKey || (event.target as HTMLElement).dataset.escaped) return;
          event.preventDefault();
          const area = event.target as HTMLTextAreaElement;
          area.setRangeText("    ", area.selectionStart, area.selectionEnd, "end");
          change({ code: area.value });
        }}
        onKeyUp={(event) => {
          const area = event.target as HTMLTextAreaElement;
          if (event.key === "Escape") area.dataset.escaped = "1";
          else if (event.key !== "Tab") delete area.dataset.escaped;
        }}
        aria-describedby="manim-code-help"
      />
      <p id="manim-code-help" class="muted">
        Tab indents; press Escape, then Tab, to leave the editor.
      </p>
      <label for="manim-scene">Scene class</label>
      <input id="manim-scene" required value={sceneName} onInput={(e) => change({ sceneName: value(e) })} />
      <label for="manim-quality">Quality</label>
      <select id="manim-quality" value={quality} onChange={(e) => change({ quality: value(e) as typeof quality })}>
        <option value="LOW">Low (480p15)</option>
        <option value="MEDIUM">Medium (720p30)</option>
        <option value="HIGH">High (1080p60)</option>
        <option value="FOURK">4K (2160p60)</option>
      </select>
      <VideoOptionsFields id="manim" value={options} onChange={(next) => change({ options: next })} />
      <Failure error={error} />
      <button type="submit" disabled={busy}>
        Render scene
      </button>
    </form>
  );
}

type AssetKind = "BACKGROUND" | "TIMER" | "CORRECT_SOUND";
const ASSET_LABELS: Record<AssetKind, string> = {
  BACKGROUND: "Background video",
  TIMER: "Timer video",
  CORRECT_SOUND: "Correct-answer sound",
};

function QuizForm() {
  const [draft, change] = useDraft("quiz", {
    title: "Quiz",
    csv: EXAMPLE_CSV,
    voice: "en-us",
    seconds: "3",
    options: DEFAULT_VIDEO_OPTIONS,
  });
  const { title, csv, voice, seconds, options } = draft;
  const [chosen, setChosen] = useState<Partial<Record<AssetKind, string>>>({});
  const [assetError, setAssetError] = useState<string | null>(null);
  const { assets, reload } = useAssets(setAssetError);
  const { error, busy, submit } = useSubmit();

  return (
    <form
      class="card"
      aria-labelledby="quiz-title"
      onSubmit={(event) => {
        event.preventDefault();
        void submit(async () => {
          const data = await request(RenderCompositionMutation, {
            input: {
              template: "QUIZ",
              title,
              csv,
              voice: voice || null,
              secondsPerQuestion: Number(seconds),
              backgroundAssetId: chosen.BACKGROUND ?? null,
              timerAssetId: chosen.TIMER ?? null,
              correctSoundAssetId: chosen.CORRECT_SOUND ?? null,
              ...creationOptionsInput(options),
            },
          });
          return data.renderComposition;
        });
      }}
    >
      <h2 id="quiz-title">Quiz composition</h2>
      <label for="quiz-title-input">Title</label>
      <input id="quiz-title-input" required value={title} onInput={(e) => change({ title: value(e) })} />
      <label for="quiz-csv">Questions (CSV: question, four choices, answer A–D)</label>
      <textarea id="quiz-csv" class="code" rows={5} required value={csv} onInput={(e) => change({ csv: value(e) })} />
      <label for="quiz-voice">Narration voice (espeak-ng; empty: none)</label>
      <input id="quiz-voice" value={voice} onInput={(e) => change({ voice: value(e) })} />
      <label for="quiz-seconds">Seconds per question</label>
      <input
        id="quiz-seconds"
        type="number"
        min={1}
        max={60}
        step={0.5}
        value={seconds}
        onInput={(e) => change({ seconds: value(e) })}
      />
      <fieldset>
        <legend>Assets (optional)</legend>
        {(Object.keys(ASSET_LABELS) as AssetKind[]).map((kind) => (
          <AssetPicker
            key={kind}
            id={`asset-${kind}`}
            kind={kind}
            label={ASSET_LABELS[kind]}
            noneLabel="Built-in"
            accept={kind === "CORRECT_SOUND" ? "audio/*" : "video/*"}
            uploadLabel={`Upload a ${ASSET_LABELS[kind].toLowerCase()}`}
            value={chosen[kind] ?? ""}
            onChange={(assetId) => setChosen((c) => ({ ...c, [kind]: assetId || undefined }))}
            assets={assets}
            reload={reload}
            onError={setAssetError}
          />
        ))}
        <Failure error={assetError} />
      </fieldset>
      <VideoOptionsFields id="quiz" value={options} onChange={(next) => change({ options: next })} />
      <Failure error={error} />
      <button type="submit" disabled={busy}>
        Render quiz
      </button>
    </form>
  );
}

function UrlForm() {
  const [title, setTitle] = useState("Imported video");
  const [url, setUrl] = useState("");
  const [options, setOptions] = useState(DEFAULT_VIDEO_OPTIONS);
  const { error, busy, submit } = useSubmit();
  return (
    <form
      class="card"
      aria-labelledby="url-title"
      onSubmit={(event) => {
        event.preventDefault();
        void submit(
          async () =>
            (
              await request(CreateVideoFromUrlMutation, {
                input: { title, url, ...creationOptionsInput(options) },
              })
            ).createVideoFromUrl,
        );
      }}
    >
      <h2 id="url-title">Import from a URL</h2>
      <label for="url-title-input">Title</label>
      <input id="url-title-input" required value={title} onInput={(e) => setTitle(value(e))} />
      <label for="url-input">Public http(s) URL of a video file</label>
      <input id="url-input" type="url" required value={url} onInput={(e) => setUrl(value(e))} />
      <VideoOptionsFields id="url" value={options} onChange={setOptions} />
      <Failure error={error} />
      <button type="submit" disabled={busy}>
        Import
      </button>
    </form>
  );
}
