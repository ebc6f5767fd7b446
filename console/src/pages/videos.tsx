import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { type ResultOf, request, subscribe, type VariablesOf, useLatestReload } from "../graphql.ts";
import { formatDate, formatDuration, isFinished, statusLabel } from "../format.ts";
import { DeleteVideoMutation, VideoEventsSubscription, VideosQuery } from "../operations.ts";
import { QueuePlace } from "../queue.tsx";
import { Link, navigate, useLocation, useTitle } from "../router.tsx";
import { TenantAnalytics } from "../viewer-analytics.tsx";

const PAGE_SIZE = 12;
const STATUSES = ["WAITING_FOR_UPLOAD", "QUEUED", "PROCESSING", "READY", "FAILED", "CANCELED", "DISCARDED"] as const;
const SOURCES = ["UPLOAD", "URL", "CLIP", "COMPOSITION", "MANIM"] as const;
const ORDERS = {
  CREATED_AT_DESC: "Newest first",
  CREATED_AT_ASC: "Oldest first",
  TITLE_ASC: "Title, A to Z",
  TITLE_DESC: "Title, Z to A",
} as const;
type Order = keyof typeof ORDERS;
type Connection = ResultOf<typeof VideosQuery>["videos"];
type Variables = VariablesOf<typeof VideosQuery>;
type Filter = NonNullable<Variables["filter"]>;

/**
 * What the library shows, as the page's URL query says it (so a reload or Back shows the same):
 * `q` (a part of the title), `status`, `source`, `tags` (comma-separated, every one), `meta`
 * (`key=value` entries separated by `;`, every one), `from` and `to` (days, both included), `sort`,
 * and the page's cursor (`after` or `before`).
 */
interface LibraryQuery {
  q: string;
  status: string;
  source: string;
  tags: string;
  meta: string;
  from: string;
  to: string;
  sort: Order;
  after: string;
  before: string;
}

const QUERY_KEYS = ["q", "status", "source", "tags", "meta", "from", "to", "sort", "after", "before"] as const;

function readQuery(params: URLSearchParams): LibraryQuery {
  const get = (key: string) => params.get(key) ?? "";
  const sort = get("sort");
  return {
    q: get("q"),
    status: (STATUSES as readonly string[]).includes(get("status")) ? get("status") : "",
    source: (SOURCES as readonly string[]).includes(get("source")) ? get("source") : "",
    tags: get("tags"),
    meta: get("meta"),
    from: get("from"),
    to: get("to"),
    sort: sort in ORDERS ? (sort as Order) : "CREATED_AT_DESC",
    after: get("after"),
    before: get("before"),
  };
}

/** The library's URL for `query`: only what differs from the defaults. */
function libraryHref(query: LibraryQuery): string {
  const params = new URLSearchParams();
  for (const key of QUERY_KEYS) {
    const value = query[key].trim();
    if (value && !(key === "sort" && value === "CREATED_AT_DESC")) params.set(key, value);
  }
  const search = params.toString();
  return search ? `/?${search}` : "/";
}

/** The start of a day (`yyyy-mm-dd`) in the browser's time zone, `days` later. */
const dayStart = (day: string, days = 0): string | null => {
  const date = new Date(`${day}T00:00`);
  if (Number.isNaN(date.getTime())) return null;
  date.setDate(date.getDate() + days);
  return date.toISOString();
};

/**
 * The metadata filter's entries: `key=value` separated by `;`, each split at its first `=` (keys
 * have no `=`), blanks around either trimmed. An entry without `=` is refused with a message.
 */
function metadataEntries(text: string): { key: string; value: string }[] | null {
  const entries = text
    .split(";")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const equals = entry.indexOf("=");
      if (equals < 1) throw new Error(`Metadata filters are key=value, separated by ";" ("${entry}" is not)`);
      return { key: entry.slice(0, equals).trim(), value: entry.slice(equals + 1).trim() };
    });
  return entries.length ? entries : null;
}

function variablesOf(query: LibraryQuery): Variables {
  const tags = query.tags
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
  const filter: Filter = {
    titleContains: query.q.trim() || null,
    status: (query.status || null) as Filter["status"],
    source: (query.source || null) as Filter["source"],
    tags: tags.length ? tags : null,
    metadata: metadataEntries(query.meta),
    createdFrom: query.from ? dayStart(query.from) : null,
    createdBefore: query.to ? dayStart(query.to, 1) : null,
  };
  const page = query.before
    ? { last: PAGE_SIZE, before: query.before }
    : { first: PAGE_SIZE, after: query.after || null };
  return { filter, orderBy: query.sort, ...page };
}

/**
 * The tenant's videos: search, filters and sort from the URL, a page at a time on the connection's
 * cursors; select videos to delete them together. Videos still in progress update live.
 */
export function VideosPage() {
  useTitle("Videos");
  const url = useLocation();
  const search = url.search;
  const query = readQuery(url.searchParams);
  const [videos, setVideos] = useState<Connection | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());

  // A filter changed twice quickly sends two requests: only the latest one's answer is shown.
  const load = useLatestReload(
    // async: a filter the page cannot send (metadata without "=") is shown as the API's refusals are.
    async () => request(VideosQuery, variablesOf(readQuery(new URLSearchParams(search)))),
    (data) => {
      setVideos(data.videos);
      setError(null);
    },
    (err) => {
      // A refused search (a title part too short, say) shows no stale results beside its reason.
      setVideos(null);
      setError(err.message);
    },
  );
  useEffect(() => {
    setSelected(new Set());
    void load();
    // New uploads from another tab or a CMS appear without a reload.
    const timer = setInterval(load, 15_000);
    return () => clearInterval(timer);
  }, [search]);

  useFollowInProgress(videos, setVideos);

  const show = (changes: Partial<LibraryQuery>) =>
    navigate(libraryHref({ ...query, after: "", before: "", ...changes }));
  const nodes = videos?.edges.map((e) => e.node) ?? [];
  const pageInfo = videos?.pageInfo;
  const filtered = QUERY_KEYS.some((key) => key !== "sort" && key !== "after" && key !== "before" && query[key]);
  return (
    <section aria-labelledby="videos-title">
      <div class="heading">
        <h1 id="videos-title">Videos</h1>
        <Link href="/upload" class="button">
          Upload
        </Link>
      </div>
      <TenantAnalytics />
      <LibraryFilters key={search} query={query} onApply={show} />
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <BulkActions
        videos={nodes}
        selected={selected}
        onSelect={setSelected}
        onDeleted={() => {
          setSelected(new Set());
          void load();
        }}
      />
      {videos && nodes.length === 0 && (
        <p>{filtered ? "No videos match." : "No videos yet. Upload one, or make one from a source."}</p>
      )}
      <ul class="videos" aria-label={`Videos, ${ORDERS[query.sort].toLowerCase()}`}>
        {nodes.map((v) => (
          <li key={v.id} class="video-card" data-video-id={v.id}>
            <label class="check select">
              <input
                type="checkbox"
                checked={selected.has(v.id)}
                onChange={(e) => {
                  const next = new Set(selected);
                  if ((e.target as HTMLInputElement).checked) next.add(v.id);
                  else next.delete(v.id);
                  setSelected(next);
                }}
              />
              <span class="visually-hidden">Select {v.title}</span>
            </label>
            <Link href={`/videos/${v.id}`}>
              {v.posterUrl ? (
                <img src={v.posterUrl} alt="" loading="lazy" width={160} height={90} />
              ) : (
                <div class="poster-placeholder" aria-hidden="true" />
              )}
              <span class="title">{v.title}</span>
            </Link>
            <span class={`status status-${v.status.toLowerCase()}`} data-testid="status">
              {statusLabel(v.status)}
            </span>
            {v.playable && v.status !== "READY" && <span class="badge">playable</span>}
            {v.status === "QUEUED" && v.queuePosition && <QueuePlace position={v.queuePosition} />}
            <span class="muted">
              {formatDuration(v.duration)} · {v.source.toLowerCase()} · {formatDate(v.createdAt)}
            </span>
            {v.tags.length > 0 && <span class="muted tags">{v.tags.map((tag) => `#${tag}`).join(" ")}</span>}
          </li>
        ))}
      </ul>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={!pageInfo?.hasPreviousPage}
          onClick={() => navigate(libraryHref({ ...query, after: "", before: pageInfo?.startCursor ?? "" }))}
        >
          Previous page
        </button>
        <button
          type="button"
          disabled={!pageInfo?.hasNextPage}
          onClick={() => navigate(libraryHref({ ...query, before: "", after: pageInfo?.endCursor ?? "" }))}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}

/** Search, filters and sort: the selects apply at once, the text and dates with Enter or Apply. */
function LibraryFilters({
  query,
  onApply,
}: {
  query: LibraryQuery;
  onApply: (changes: Partial<LibraryQuery>) => void;
}) {
  const [draft, setDraft] = useState(query);
  const text = (key: "q" | "tags" | "meta" | "from" | "to") => ({
    value: draft[key],
    onInput: (e: Event) => setDraft({ ...draft, [key]: (e.target as HTMLInputElement).value }),
  });
  const choose = (key: "status" | "source" | "sort") => ({
    value: draft[key],
    onChange: (e: Event) => onApply({ ...draft, [key]: (e.target as HTMLSelectElement).value }),
  });
  return (
    <form
      class="filters"
      aria-label="Search and filter videos"
      onSubmit={(event) => {
        event.preventDefault();
        onApply(draft);
      }}
    >
      <label>
        Title contains
        <input type="search" {...text("q")} />
      </label>
      <label>
        Status
        <select {...choose("status")}>
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {statusLabel(s)}
            </option>
          ))}
        </select>
      </label>
      <label>
        Source
        <select {...choose("source")}>
          <option value="">All</option>
          {SOURCES.map((s) => (
            <option key={s} value={s}>
              {s.toLowerCase()}
            </option>
          ))}
        </select>
      </label>
      <label>
        Tags (all of)
        <input {...text("tags")} placeholder="comma-separated" />
      </label>
      <label>
        Metadata (all of)
        <input {...text("meta")} placeholder="key=value; key=value" />
      </label>
      <label>
        Created from
        <input type="date" {...text("from")} />
      </label>
      <label>
        Created until
        <input type="date" {...text("to")} />
      </label>
      <label>
        Sort
        <select {...choose("sort")}>
          {(Object.keys(ORDERS) as Order[]).map((order) => (
            <option key={order} value={order}>
              {ORDERS[order]}
            </option>
          ))}
        </select>
      </label>
      <div class="filter-actions">
        <button type="submit">Apply</button>
        <button type="button" class="secondary" onClick={() => navigate("/")}>
          Clear
        </button>
      </div>
    </form>
  );
}

type Node = Connection["edges"][number]["node"];

/** "Select all on this page", and deleting the selected videos after a confirmation, with each refusal. */
function BulkActions(props: {
  videos: Node[];
  selected: Set<string>;
  onSelect: (selected: Set<string>) => void;
  onDeleted: () => void;
}) {
  const { videos, selected } = props;
  const [busy, setBusy] = useState(false);
  const [refusals, setRefusals] = useState<string[]>([]);
  const [done, setDone] = useState<string | null>(null);
  const all = useRef<HTMLInputElement>(null);
  const onPage = videos.filter((v) => selected.has(v.id));
  const allSelected = videos.length > 0 && onPage.length === videos.length;
  // Before the frame is painted (a layout effect): the box never shows a stale state, even for a frame.
  useLayoutEffect(() => {
    if (all.current) all.current.indeterminate = onPage.length > 0 && !allSelected;
  });

  const deleteSelected = async () => {
    const chosen = onPage;
    if (!confirm(`Delete ${chosen.length} video${chosen.length === 1 ? "" : "s"} and all their media?`)) return;
    setBusy(true);
    setRefusals([]);
    setDone(null);
    const refused: string[] = [];
    // A few at a time: each deletion removes a video's files.
    const queue = [...chosen];
    const deleteNext = async (): Promise<void> => {
      const video = queue.shift();
      if (!video) return;
      try {
        const { deleteVideo } = await request(DeleteVideoMutation, { id: video.id });
        if (deleteVideo.__typename !== "DeleteVideoSuccess") refused.push(`${video.title}: ${deleteVideo.message}`);
      } catch (err) {
        refused.push(`${video.title}: ${(err as Error).message}`);
      }
      return deleteNext();
    };
    await Promise.all([deleteNext(), deleteNext(), deleteNext()]);
    setBusy(false);
    setRefusals(refused);
    setDone(`Deleted ${chosen.length - refused.length} of ${chosen.length}.`);
    props.onDeleted();
  };

  return (
    <div class="bulk">
      <label class="check">
        <input
          ref={all}
          type="checkbox"
          checked={allSelected}
          disabled={videos.length === 0}
          onChange={(e) =>
            props.onSelect(new Set((e.target as HTMLInputElement).checked ? videos.map((v) => v.id) : []))
          }
        />
        Select all on this page
      </label>
      <button type="button" class="danger" disabled={busy || onPage.length === 0} onClick={deleteSelected}>
        {busy ? "Deleting…" : `Delete selected (${onPage.length})`}
      </button>
      <div aria-live="polite">
        {done && <p data-testid="bulk-result">{done}</p>}
        {refusals.length > 0 && (
          <div role="alert" class="error">
            <p>Not deleted:</p>
            <ul>
              {refusals.map((refusal) => (
                <li key={refusal}>{refusal}</li>
              ))}
            </ul>
          </div>
        )}
      </div>
    </div>
  );
}

/** Videos on the page still in progress follow their events. */
function useFollowInProgress(
  videos: Connection | null,
  setVideos: (update: (c: Connection | null) => Connection | null) => void,
) {
  const followed = (videos?.edges ?? [])
    .map((e) => e.node)
    .filter((v) => !isFinished(v.status))
    .map((v) => v.id)
    .join(",");
  useEffect(() => {
    if (!followed) return;
    const stops = followed.split(",").map((videoId) =>
      subscribe(
        VideoEventsSubscription,
        { videoId },
        {
          next: ({ videoEvents }) =>
            setVideos((current) =>
              current
                ? {
                    ...current,
                    edges: current.edges.map((edge) =>
                      edge.node.id === videoId
                        ? {
                            ...edge,
                            node: {
                              ...edge.node,
                              ...videoEvents.video,
                              // The place in line comes with QueuePositionEvents and ends when the job starts.
                              queuePosition:
                                videoEvents.__typename === "QueuePositionEvent"
                                  ? videoEvents.position
                                  : videoEvents.video.status === "QUEUED"
                                    ? edge.node.queuePosition
                                    : null,
                            },
                          }
                        : edge,
                    ),
                  }
                : current,
            ),
        },
      ),
    );
    return () => {
      for (const stop of stops) stop();
    };
  }, [followed]);
}
