import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { formatDate, formatDuration, formatPercent, formatVariantBitRate, statusLabel } from "../../format.ts";
import { ApiError, type ResultOf, request } from "../../graphql.ts";
import type { Video } from "../../live-video.ts";
import { CancelJobMutation, VideoCostQuery, VideoJobsQuery, ChunkJobsQuery } from "../../operations.ts";
import { ActionsCell, ActionsHeader, Table } from "../../table.tsx";

type Jobs = NonNullable<ResultOf<typeof VideoJobsQuery>["video"]>["jobs"]["edges"];
type Costs = NonNullable<ResultOf<typeof VideoCostQuery>["video"]>;
type JobCost = Costs["jobs"]["edges"][number]["node"]["cost"] | null;

const usd = new Intl.NumberFormat("en", { style: "currency", currency: "USD", maximumSignificantDigits: 2 });
const money = (value: number | null | undefined) => (value == null ? "–" : usd.format(value));

/** Variants, jobs and their runs (command, stderr tail, exit code): needs the jobs:admin scope. */
export function Operators({ video, onRetry }: { video: Video; onRetry: (variantId: string) => Promise<unknown> }) {
  const [jobs, setJobs] = useState<Jobs | null>(null);
  const [chunks, setChunks] = useState<{ total: number; done: number } | null>(null);
  // A split transcode's chunk jobs, by the transcode job's id.
  const [chunkJobs, setChunkJobs] = useState<ReadonlyMap<string, JobNode[]>>(new Map());
  const [error, setError] = useState<string | null>(null);
  // Costs need jobs:admin: a key or viewer without it gets FORBIDDEN, and simply sees no costs.
  const [costs, setCosts] = useState<Costs | null>(null);
  const [costError, setCostError] = useState<string | null>(null);
  const loadJobs = () =>
    request(VideoJobsQuery, { id: video.id })
      .then(async (data) => {
        const edges = data.video?.jobs.edges ?? [];
        const split = data.video?.transcodeChunks ?? null;
        // Only a split video's transcodes have chunk jobs.
        const transcodes = split ? edges.filter(({ node }) => node.kind === "TRANSCODE") : [];
        const lists = await Promise.all(
          transcodes.map(async ({ node }) => {
            const answer = await request(ChunkJobsQuery, { id: node.id });
            return [node.id, answer.job?.chunks ?? []] as const;
          }),
        );
        setJobs(edges);
        setChunks(split);
        setChunkJobs(new Map(lists));
      })
      .catch((err: Error) => setError(err.message));
  const load = () =>
    Promise.all([
      loadJobs(),
      request(VideoCostQuery, { id: video.id })
        .then((data) => setCosts(data.video))
        .catch((err: Error) => {
          setCosts(null);
          setCostError(err instanceof ApiError && err.code === "FORBIDDEN" ? null : err.message);
        }),
    ]);
  const jobCost = (id: string): JobCost =>
    costs?.jobs.edges.flatMap(({ node }) => [node, ...node.chunks]).find((job) => job.id === id)?.cost ?? null;
  // Reload when the video's status changes (a job started, finished or was retried).
  useEffect(() => {
    void load();
  }, [video.id, video.status, video.variants.map((v) => v.status).join()]);
  // A job's own state changes without a video event (a run fails, the job is retried or fails for
  // good after its video did): while one is queued or running, read the jobs again.
  const active =
    jobs?.some(({ node }) =>
      [node, ...(chunkJobs.get(node.id) ?? [])].some((job) => job.status === "QUEUED" || job.status === "RUNNING"),
    ) ?? false;
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => void loadJobs(), 3000);
    return () => clearInterval(timer);
  }, [video.id, active]);

  return (
    <section aria-labelledby="operators-title" class="operators">
      <h2 id="operators-title">Details</h2>
      <Table>
        <caption>Variants</caption>
        <thead>
          <tr>
            <th scope="col">Rung</th>
            <th scope="col">Size</th>
            <th scope="col">Bit rate</th>
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <ActionsHeader />
          </tr>
        </thead>
        <tbody>
          {video.variants.map((v) => (
            <tr key={v.id}>
              <td>{v.name}</td>
              <td>{v.width ? `${v.width}×${v.height}` : v.kind.toLowerCase()}</td>
              <td>{formatVariantBitRate(v)}</td>
              <td>{statusLabel(v.status)}</td>
              <td>{formatPercent(v.progress)}</td>
              <ActionsCell>
                {v.status === "FAILED" && (
                  <button type="button" onClick={() => onRetry(v.id)}>
                    Retry {v.name}
                  </button>
                )}
              </ActionsCell>
            </tr>
          ))}
        </tbody>
      </Table>
      <h3>Jobs</h3>
      {costs?.cost && (
        <p data-testid="video-cost">
          Cost (an estimate at the configured prices, not a bill): estimated {money(costs.cost.estimatedUsd)} · actual{" "}
          {money(costs.cost.jobCount > 0 && costs.cost.cpuSeconds > 0 ? costs.cost.actualUsd : null)}
          {costs.cost.cpuSeconds > 0 && (
            <span class="muted">
              {" "}
              ({costs.cost.cpuSeconds.toFixed(1)} CPU s, {costs.cost.wallSeconds.toFixed(1)} s)
            </span>
          )}
        </p>
      )}
      {costError && <p class="muted">Costs: {costError}</p>}
      {error && <p class="muted">{error}</p>}
      {jobs?.map(({ node: job }) => (
        <JobDetails key={job.id} job={job} cost={jobCost(job.id)} onChanged={load} onError={setError}>
          {(chunkJobs.get(job.id)?.length ?? 0) > 0 && (
            <section class="job-chunks" aria-label="Chunks">
              <h4>
                Chunks
                {chunks && ` · ${chunks.done} of ${chunks.total} done (the first is this job's own run)`}
              </h4>
              {chunkJobs.get(job.id)?.map((chunk) => (
                <JobDetails key={chunk.id} job={chunk} cost={jobCost(chunk.id)} onChanged={load} onError={setError} />
              ))}
            </section>
          )}
        </JobDetails>
      ))}
    </section>
  );
}

type JobNode = Jobs[number]["node"];

/** One job: its summary line, its error, a cancel button while it is queued or running, and its runs. */
function JobDetails({
  job,
  cost,
  onChanged,
  onError,
  children,
}: {
  job: JobNode;
  cost: JobCost;
  onChanged: () => Promise<unknown>;
  onError: (message: string | null) => void;
  children?: ComponentChildren;
}) {
  return (
    <details class="job">
      <summary>
        {job.kind.toLowerCase()}
        {job.chunk
          ? ` ${job.chunk.index} (${formatDuration(job.chunk.fromSeconds)}–${formatDuration(job.chunk.toSeconds)})`
          : ""}{" "}
        · {statusLabel(job.status)} · attempt {job.attempt}/{job.maxAttempts} · {formatPercent(job.progress)}
        {job.dispatchedTo ? ` · ${job.dispatchedTo}` : ""}
        <JobCostLabel cost={cost} />
      </summary>
      {job.error && <p class="error">{job.error}</p>}
      {(job.status === "QUEUED" || job.status === "RUNNING") && (
        <button
          type="button"
          onClick={async () => {
            const answer = await request(CancelJobMutation, { id: job.id }).catch((err: Error) => ({
              cancelJob: { __typename: "Error", message: err.message },
            }));
            if ("message" in answer.cancelJob) onError(answer.cancelJob.message ?? null);
            void onChanged();
          }}
        >
          Cancel job
        </button>
      )}
      <ol>
        {job.runs.map((run) => (
          <li key={run.id}>
            <p>
              Attempt {run.attempt} on {run.workerId}: {statusLabel(run.status)}
              {run.exitCode != null && ` · exit code ${run.exitCode}`} · {formatDate(run.startedAt)}
            </p>
            {run.error && <p class="error">{run.error}</p>}
            {run.command && (
              <>
                <h4>Command</h4>
                <pre>{run.command}</pre>
              </>
            )}
            {run.stderrTail && (
              <>
                <h4>stderr (tail)</h4>
                <pre>{run.stderrTail}</pre>
              </>
            )}
          </li>
        ))}
      </ol>
      {children}
    </details>
  );
}

/** A job's estimated and actual cost, in its summary line. */
function JobCostLabel({ cost }: { cost: JobCost }) {
  if (!cost || (cost.estimatedUsd == null && cost.actualUsd == null)) return null;
  const basis = cost.estimateBasis === "UPLOAD_SIZE" ? " (rough: from the upload's size)" : "";
  return (
    <span class="muted" data-testid="job-cost">
      {" "}
      · estimated {money(cost.estimatedUsd)}
      {basis} · actual {money(cost.actualUsd)}
      {cost.cpuSeconds != null && ` (${cost.cpuSeconds.toFixed(1)} CPU s)`}
    </span>
  );
}
