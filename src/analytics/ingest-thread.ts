// The analytics ingest thread (a worker_threads entry, started by ingest-supervisor.ts): every beacon
// batch's work after its bytes were read, and the write-behind, off the event loop that serves
// GraphQL. The main thread reads a body and transfers its bytes here; this thread parses, validates,
// checks the view token, rate-limits per view, checks the tenant's switch, sums the batch and
// answers; every `flushEveryMs` it writes the sums with its own pool.
import { parentPort, workerData } from "node:worker_threads";
import pg from "pg";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { log } from "../log.ts";
import { parseBeaconBatch } from "../shared/analytics-beacons.ts";
import { createBatchBuffer } from "./batch-buffer.ts";
import { COLLECTION_TOPIC, createCollectionSwitch } from "./collection-switch.ts";
import { batchFigures } from "./ingest.ts";
import {
  type Answer,
  type BatchAnswer,
  type FromIngestThread,
  type IngestThreadOptions,
  REASONS,
  refusal,
  type ToIngestThread,
  UNAVAILABLE,
} from "./ingest-messages.ts";
import { ViewTokens } from "./view-tokens.ts";

const port = parentPort!;
const options = workerData as IngestThreadOptions;

// As the main thread's analytics pool: a crash may lose the last fraction of a second of beacons.
const pool = new pg.Pool({
  connectionString: options.databaseUrl,
  max: 3,
  connectionTimeoutMillis: 10_000,
  options: "-c synchronous_commit=off",
});
pool.on("error", (err) => log.warn("analytics ingest thread: connection lost", { err }));
const viewTokens = new ViewTokens(options.signingSecret, options.viewTokenTtlSeconds);
const perView = new RateLimiterMemory({ points: options.batchesPerViewPerMinute, duration: 60 });
// The switch's changes reach this thread as messages from the main thread, which hears the fan-out.
const switchChanges = new EventTarget();
const collection = createCollectionSwitch(pool, switchChanges);
const buffer = createBatchBuffer(pool, options.flushEveryMs);
buffer.start();

/** A batch's answer, in the order the endpoint always checked: JSON, format, token, view's rate, switch. */
async function takeBatch(bytes: ArrayBuffer): Promise<Omit<BatchAnswer, "id">> {
  const refused = (answer: Answer) => ({ answer, countedVideoId: null, liveLatencyMs: null });
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return refused(refusal(400, REASONS.notJson));
  }
  const parsed = parseBeaconBatch(body);
  if ("problem" in parsed) return refused(refusal(400, parsed.problem));
  const { batch } = parsed;
  const checked = viewTokens.check(batch.viewToken, batch.videoId);
  if ("problem" in checked) return refused(refusal(403, checked.problem));
  try {
    await perView.consume(checked.claims.viewId);
  } catch (err) {
    if (!(err instanceof RateLimiterRes)) throw err;
    return refused(refusal(429, REASONS.tooMany("for this view"), Math.ceil(err.msBeforeNext / 1000)));
  }
  if (!(await collection.isEnabled(checked.claims.tenantId))) return refused(refusal(403, REASONS.collectionOff));
  const figures = batchFigures(batch.events);
  const written = buffer.add(checked.claims, batch.seq, figures);
  // Answered once its write landed: 202 says it is counted, and a write that failed (logged once for
  // all its batches) is a 503.
  if (
    written &&
    (await written.then(
      () => false,
      () => true,
    ))
  )
    return refused(UNAVAILABLE);
  const counted = written !== null;
  return {
    answer: { status: 202, body: { counted } },
    countedVideoId: counted ? batch.videoId : null,
    // A batch sent again (the same seq) reports nothing again.
    liveLatencyMs: counted ? figures.liveLatencyMs : null,
  };
}

const reply = (message: FromIngestThread) => port.postMessage(message);

/** Answers ready in this turn of the event loop, sent together at its end (one wake-up of the main thread). */
let answers: BatchAnswer[] = [];
function answer(ready: BatchAnswer): void {
  if (answers.length === 0)
    setImmediate(() => {
      reply({ kind: "answers", answers });
      answers = [];
    });
  answers.push(ready);
}

port.on("message", (message: ToIngestThread) => {
  switch (message.kind) {
    case "batches":
      for (const { id, body } of message.batches)
        takeBatch(body).then(
          (taken) => answer({ id, ...taken }),
          (err) => {
            log.warn("analytics request failed", { err });
            answer({ id, answer: UNAVAILABLE, countedVideoId: null, liveLatencyMs: null });
          },
        );
      break;
    case "flush":
      void buffer.flush().then(() => reply({ kind: "done", id: message.id }));
      break;
    case "collection-changed":
      switchChanges.dispatchEvent(new CustomEvent(COLLECTION_TOPIC, { detail: { tenantId: message.tenantId } }));
      break;
    case "stop":
      void buffer
        .stop()
        .then(() => pool.end())
        .catch((err) => log.warn("analytics ingest thread: stopping failed", { err }))
        .finally(() => reply({ kind: "done", id: message.id }));
      break;
    default:
      message satisfies never;
  }
});
