/**
 * What the API's main thread and the analytics ingest thread (`ingest-thread.ts`) say to each other,
 * and the endpoint's answers, which either thread makes. Messages are structured clones between
 * two threads of one program, built only by `ingest-supervisor.ts` and `ingest-thread.ts`.
 */

/** What the ingest thread is started with (`workerData`). */
export interface IngestThreadOptions {
  databaseUrl: string;
  signingSecret: string;
  viewTokenTtlSeconds: number;
  batchesPerViewPerMinute: number;
  /** How often accepted batches are written (batch-buffer.ts). */
  flushEveryMs: number;
}

/** A beacon batch: the request body's bytes, transferred (not copied). */
export interface BatchBytes {
  id: number;
  body: ArrayBuffer;
}

/**
 * A beacon batch's answer, the video whose viewers it counted (null: it counted none), and the live
 * latency it reported (a counted batch's last `liveLatency`; null: none), for the main thread's metric.
 */
export interface BatchAnswer {
  id: number;
  answer: Answer;
  countedVideoId: string | null;
  liveLatencyMs: number | null;
}

export type ToIngestThread =
  /**
   * The batches whose bytes were read in one turn of the main thread's event loop: one message,
   * not one each, so that waking the other thread is paid once per turn.
   */
  | { kind: "batches"; batches: BatchBytes[] }
  /** Write what is pending; answered `done` once it is in the database. */
  | { kind: "flush"; id: number }
  /** A tenant's collection switch changed (null: any may have): read it again. */
  | { kind: "collection-changed"; tenantId: string | null }
  /** Write what is pending and close the pool; answered `done`. */
  | { kind: "stop"; id: number };

export type FromIngestThread =
  /** The answers ready in one turn of the ingest thread's event loop. */
  { kind: "answers"; answers: BatchAnswer[] } | { kind: "done"; id: number };

/** An endpoint's answer: the status, the JSON body and, for a 429 or 503, when to try again. */
export interface Answer {
  status: number;
  body: object;
  retryAfterSeconds?: number;
}

export const refusal = (status: number, reason: string, retryAfterSeconds?: number): Answer => ({
  status,
  body: { error: reason },
  ...(retryAfterSeconds !== undefined && { retryAfterSeconds }),
});

export const REASONS = {
  collectionOff: "analytics collection is off for this video's tenant",
  notJson: "the body is not JSON",
  tooMany: (what: string) => `too many analytics requests ${what}; slow down`,
  unavailable: "analytics are unavailable; the batch was dropped",
} as const;

/** A database failure or the ingest thread gone: the player drops the batch. */
export const UNAVAILABLE = refusal(503, REASONS.unavailable, 5);
