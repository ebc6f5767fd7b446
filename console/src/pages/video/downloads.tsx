import { CheckboxSet } from "../../checkbox-set.tsx";
import { useEffect, useState } from "preact/hooks";
import { formatBytes } from "../../upload.ts";
import { statusLabel } from "../../format.ts";
import { type ResultOf, request, runAndReload, useLatestReload } from "../../graphql.ts";
import type { Video } from "../../live-video.ts";
import { RequestStaticRenditionsMutation, VideoStaticRenditionsQuery } from "../../operations.ts";
import { STATIC_RENDITIONS } from "../../video-options.tsx";

type Rendition = NonNullable<ResultOf<typeof VideoStaticRenditionsQuery>["video"]>["staticRenditions"][number];

/** A rendition's state in words: its size and a download link once READY, its reason once FAILED or SKIPPED. */
function RenditionState({ rendition: r }: { rendition: Rendition }) {
  if (r.status === "READY") {
    return (
      <>
        {statusLabel(r.status)}
        <span class="muted">
          {r.width ? ` · ${r.width}×${r.height}` : ""}
          {r.sizeBytes != null ? ` · ${formatBytes(r.sizeBytes)}` : ""}
        </span>
        {r.downloadUrl && (
          <>
            {" · "}
            <a href={r.downloadUrl} download>
              Download
            </a>
          </>
        )}
      </>
    );
  }
  return (
    <>
      {statusLabel(r.status)}
      {r.status === "PREPARING" && <span class="muted"> (made once the video is ready)</span>}
      {r.error && <span class="error"> · {r.error}</span>}
    </>
  );
}

/**
 * The static renditions (MP4 and M4A files for downloads): each one's state, and asking for more
 * (requestStaticRenditions; a FAILED one may be asked for again). Read again while one is PREPARING.
 */
export function Downloads({ videoId, status }: { videoId: string; status: Video["status"] }) {
  const [renditions, setRenditions] = useState<Rendition[] | null>(null);
  const [wanted, setWanted] = useState<Rendition["name"][]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const load = useLatestReload(
    () => request(VideoStaticRenditionsQuery, { id: videoId }),
    (data) => setRenditions(data.video?.staticRenditions ?? []),
    (err) => setMessage(err.message),
  );
  // The video's status is a dependency: its turning READY is when the renditions are made.
  useEffect(() => {
    void load();
  }, [videoId, status]);
  const preparing = renditions?.some((r) => r.status === "PREPARING") ?? false;
  useEffect(() => {
    if (!preparing) return;
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, [videoId, preparing]);
  if (!renditions) return null;

  const byName = new Map(renditions.map((r) => [r.name, r]));
  const askable = STATIC_RENDITIONS.filter(([name]) => !byName.has(name) || byName.get(name)?.status === "FAILED");
  return (
    <section aria-labelledby="downloads-title" class="downloads">
      <h2 id="downloads-title">Downloads</h2>
      {renditions.length === 0 ? (
        <p class="muted">No static renditions asked for.</p>
      ) : (
        <ul aria-label="Static renditions">
          {STATIC_RENDITIONS.filter(([name]) => byName.has(name)).map(([name, label]) => (
            <li key={name} data-testid="static-rendition" data-name={name}>
              {label}: <RenditionState rendition={byName.get(name) as Rendition} />
            </li>
          ))}
        </ul>
      )}
      {askable.length > 0 && (
        <form
          aria-label="Request static renditions"
          onSubmit={async (e) => {
            e.preventDefault();
            if (wanted.length === 0) return;
            await runAndReload(
              async () => {
                const result = (await request(RequestStaticRenditionsMutation, { videoId, names: wanted }))
                  .requestStaticRenditions;
                if (result.__typename === "RequestStaticRenditionsSuccess") setWanted([]);
                return result;
              },
              setMessage,
              load,
            );
          }}
        >
          <CheckboxSet legend="Make more" options={askable} value={wanted} onChange={setWanted} />
          <button type="submit" disabled={wanted.length === 0}>
            Request downloads
          </button>
        </form>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
    </section>
  );
}
