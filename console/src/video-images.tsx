import { useState } from "preact/hooks";
import { request, type VariablesOf } from "./graphql.ts";
import { VideoAnimatedPreviewQuery, VideoThumbnailQuery } from "./operations.ts";

type AnimatedFormat = NonNullable<VariablesOf<typeof VideoAnimatedPreviewQuery>["format"]>;

/** The player's `<video>`, for "use the player's time". */
type PlayerElement = { current: HTMLVideoElement | null };

/** A refusal and the field it names (`""`: the request as a whole). */
type Problem = { field: string; message: string };

/** A time typed in seconds: a problem when it is none; the API's own rules say the rest. */
function seconds(field: string, text: string): number | Problem {
  const value = text.trim() === "" ? Number.NaN : Number(text);
  if (!Number.isFinite(value)) return { field, message: `${field} must be a number of seconds` };
  if (value < 0) return { field, message: `${field} must be 0 or more seconds` };
  return value;
}

/** A width typed in pixels: a whole number, or a problem. */
function pixels(text: string): number | Problem {
  const value = text.trim() === "" ? Number.NaN : Number(text);
  return Number.isInteger(value) ? value : { field: "width", message: "width must be a whole number of pixels" };
}

const isProblem = (value: unknown): value is Problem => typeof value === "object" && value !== null;

/**
 * The API's refusal (a BAD_USER_INPUT error whose message starts with the parameter it names, e.g.
 * "width must be an even number of pixels from 16 to 1920") beside that field.
 */
function refusal(err: Error, fields: readonly string[]): Problem {
  const field = fields.find((name) => err.message.startsWith(`${name} `)) ?? "";
  return { field, message: err.message };
}

const playerTime = (player: PlayerElement): number | null =>
  player.current ? Math.round(player.current.currentTime * 10) / 10 : null;

/** The field's error under it, and the attributes that tie the field to it. */
function useFieldProblems(prefix: string) {
  const [problem, setProblem] = useState<Problem | null>(null);
  const of = (field: string) => (problem?.field === field ? problem.message : null);
  return {
    problem,
    setProblem,
    described: (field: string) =>
      of(field) ? { "aria-invalid": true, "aria-describedby": `${prefix}-${field}-error` } : {},
    error: (field: string) =>
      of(field) ? (
        <p id={`${prefix}-${field}-error`} class="error" role="alert">
          {of(field)}
        </p>
      ) : null,
  };
}

/** An image the API makes on request, with its URL to copy. */
function MadeImage({ url, alt, name }: { url: string; alt: string; name: string }) {
  const absolute = new URL(url, location.href).href;
  const [failed, setFailed] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  return (
    <div class="made-image">
      {failed === absolute ? (
        <p class="error" role="alert">
          The image could not be loaded (it is made from the video's published segments).
        </p>
      ) : (
        <img src={absolute} alt={alt} onError={() => setFailed(absolute)} data-testid={`${name}-image`} />
      )}
      <label for={`${name}-url`}>{name === "thumbnail" ? "Thumbnail URL" : "Animated preview URL"}</label>
      <input id={`${name}-url`} readOnly value={absolute} onFocus={(e) => (e.target as HTMLInputElement).select()} />
      <button
        type="button"
        class="secondary"
        onClick={async () => {
          await navigator.clipboard?.writeText(absolute);
          setCopied(true);
        }}
      >
        {copied ? "Copied" : "Copy URL"}
      </button>
    </div>
  );
}

/** A JPEG of one frame (`thumbnailUrl`): a time, typed or the player's, and a width. */
function Thumbnail({ videoId, duration, player }: { videoId: string; duration: number; player: PlayerElement }) {
  const [form, setForm] = useState({ time: "0", width: "320" });
  const [shown, setShown] = useState<{ url: string; time: number; width: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const { problem, setProblem, described, error } = useFieldProblems("thumbnail");
  const show = async (e: Event) => {
    e.preventDefault();
    const time = seconds("time", form.time);
    const width = pixels(form.width);
    const local = [time, width].find(isProblem);
    setProblem(local ?? null);
    if (local || isProblem(time) || isProblem(width)) return;
    setBusy(true);
    try {
      const url = (await request(VideoThumbnailQuery, { id: videoId, time, width })).video?.thumbnailUrl;
      if (url) setShown({ url, time, width });
      else setProblem({ field: "", message: "The video has no thumbnails until it is ready." });
    } catch (err) {
      setShown(null);
      setProblem(refusal(err as Error, ["time", "width"]));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="thumbnail-title" class="video-image">
      <h2 id="thumbnail-title">Thumbnail</h2>
      <form onSubmit={show} noValidate>
        <div class="clip-bound">
          <label for="thumbnail-time">Time (seconds, 0 to {duration})</label>
          <input
            id="thumbnail-time"
            type="number"
            min={0}
            max={duration}
            step="any"
            value={form.time}
            onInput={(e) => setForm({ ...form, time: (e.target as HTMLInputElement).value })}
            {...described("time")}
          />
          <button
            type="button"
            class="secondary"
            onClick={() => {
              const at = playerTime(player);
              if (at !== null) setForm({ ...form, time: String(at) });
            }}
          >
            Use the player's time
          </button>
          {error("time")}
        </div>
        <label for="thumbnail-width">Width (pixels, even, 16 to 1920)</label>
        <input
          id="thumbnail-width"
          type="number"
          min={16}
          max={1920}
          step={2}
          value={form.width}
          onInput={(e) => setForm({ ...form, width: (e.target as HTMLInputElement).value })}
          {...described("width")}
        />
        {error("width")}
        {problem?.field === "" && (
          <p class="error" role="alert">
            {problem.message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Show thumbnail
        </button>
      </form>
      {shown && (
        <MadeImage url={shown.url} name="thumbnail" alt={`The frame at ${shown.time} s, ${shown.width} px wide`} />
      )}
    </section>
  );
}

/** An animated WebP or GIF of a range (`animatedPreviewUrl`): at most 5 s, from the player's time by default. */
function AnimatedPreview({ videoId, duration, player }: { videoId: string; duration: number; player: PlayerElement }) {
  const [form, setForm] = useState({
    start: "0",
    end: String(Math.min(3, duration)),
    width: "240",
    format: "WEBP" as AnimatedFormat,
  });
  const [shown, setShown] = useState<{ url: string; start: number; end: number; format: AnimatedFormat } | null>(null);
  const [busy, setBusy] = useState(false);
  const { problem, setProblem, described, error } = useFieldProblems("animated");
  const show = async (e: Event) => {
    e.preventDefault();
    const start = seconds("start", form.start);
    const end = seconds("end", form.end);
    const width = pixels(form.width);
    const local = [start, end, width].find(isProblem);
    setProblem(local ?? null);
    if (local || isProblem(start) || isProblem(end) || isProblem(width)) return;
    setBusy(true);
    try {
      const { video } = await request(VideoAnimatedPreviewQuery, {
        id: videoId,
        start,
        end,
        width,
        format: form.format,
      });
      if (video?.animatedPreviewUrl) setShown({ url: video.animatedPreviewUrl, start, end, format: form.format });
      else setProblem({ field: "", message: "The video has no animated previews until it is ready." });
    } catch (err) {
      setShown(null);
      setProblem(refusal(err as Error, ["start", "end", "width"]));
    } finally {
      setBusy(false);
    }
  };
  const number = (field: "start" | "end" | "width", label: string, attributes: Record<string, number | string>) => (
    <>
      <label for={`animated-${field}`}>{label}</label>
      <input
        id={`animated-${field}`}
        type="number"
        {...attributes}
        value={form[field]}
        onInput={(e) => setForm({ ...form, [field]: (e.target as HTMLInputElement).value })}
        {...described(field)}
      />
      {error(field)}
    </>
  );
  return (
    <section aria-labelledby="animated-title" class="video-image">
      <h2 id="animated-title">Animated preview</h2>
      <form onSubmit={show} noValidate>
        <p class="muted">At most 5 s, and width × seconds at most 1600 (320 px for 5 s).</p>
        <button
          type="button"
          class="secondary"
          onClick={() => {
            const at = playerTime(player);
            if (at === null) return;
            const end = Math.round(Math.min(at + 3, duration) * 10) / 10;
            setForm({ ...form, start: String(at), end: String(end) });
          }}
        >
          Start at the player's time
        </button>
        {number("start", "Preview start, in seconds", { min: 0, max: duration, step: "any" })}
        {number("end", "Preview end, in seconds", { min: 0, max: duration, step: "any" })}
        {number("width", "Width (pixels, even, 16 to 480)", { min: 16, max: 480, step: 2 })}
        <label for="animated-format">Format</label>
        <select
          id="animated-format"
          value={form.format}
          onChange={(e) => setForm({ ...form, format: (e.target as HTMLSelectElement).value as AnimatedFormat })}
        >
          <option value="WEBP">WebP</option>
          <option value="GIF">GIF</option>
        </select>
        {problem?.field === "" && (
          <p class="error" role="alert">
            {problem.message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Show animated preview
        </button>
      </form>
      {shown && (
        <MadeImage
          url={shown.url}
          name="animated"
          alt={`${shown.format === "GIF" ? "GIF" : "WebP"} of ${shown.start} s to ${shown.end} s`}
        />
      )}
    </section>
  );
}

/** A READY video's images made on request: a thumbnail and an animated preview, with their URLs. */
export function VideoImages(props: { videoId: string; duration: number; player: PlayerElement }) {
  return (
    <>
      <Thumbnail {...props} />
      <AnimatedPreview {...props} />
    </>
  );
}
