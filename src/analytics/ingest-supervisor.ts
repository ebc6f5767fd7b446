import { Worker } from "node:worker_threads";
import { log } from "../log.ts";
import {
  type BatchAnswer,
  type BatchBytes,
  type FromIngestThread,
  type IngestThreadOptions,
  type ToIngestThread,
  UNAVAILABLE,
} from "./ingest-messages.ts";

/** A thread that died within this long of starting is restarted after a growing delay (to 5 s), not at once. */
const STEADY_AFTER_MS = 10_000;
const MAX_RESTART_DELAY_MS = 5_000;

type Taken = Omit<BatchAnswer, "id">;

const NOT_TAKEN: Taken = { answer: UNAVAILABLE, countedVideoId: null, liveLatencyMs: null };

/**
 * The analytics ingest thread (`ingest-thread.ts`) seen from the main thread: batches' bytes go in, answers come
 * back. A thread that dies is restarted with a growing delay; what it held is lost as on a crash and answered
 * 503, as outside `start()`–`stop()`. The first batch starts it, so an API that takes no beacons never pays
 * for a second V8 isolate (docs/analytics.md, "The ingest thread").
 */
export function createIngestThread(options: IngestThreadOptions) {
  let worker: Worker | null = null;
  /** `start()` was called: the first batch starts the thread. */
  let armed = false;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | null = null;
  let quickDeaths = 0;
  let nextId = 1;
  /** Batches and flushes sent to the running thread and not yet answered. */
  const waiting = new Map<number, (reply: Taken | null) => void>();
  /** Batches read in this turn of the event loop, sent together at its end. */
  let outbox: BatchBytes[] = [];

  function spawn(): void {
    restartTimer = null;
    const startedAt = Date.now();
    const thread = new Worker(new URL("./ingest-thread.ts", import.meta.url), {
      workerData: options,
      name: "analytics ingest",
    });
    thread.on("message", (message: FromIngestThread) => {
      if (message.kind === "answers") for (const a of message.answers) settle(a.id, a);
      else settle(message.id, null);
    });
    thread.on("error", (err) => log.error("analytics ingest thread failed", { err }));
    thread.on("exit", (code) => {
      if (worker === thread) worker = null;
      for (const resolve of waiting.values()) resolve(null);
      waiting.clear();
      if (stopping) return;
      quickDeaths = Date.now() - startedAt < STEADY_AFTER_MS ? quickDeaths + 1 : 0;
      const delayMs = quickDeaths <= 1 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (quickDeaths - 2));
      log.error("analytics ingest thread exited; starting it again", { code, delayMs });
      restartTimer = setTimeout(spawn, delayMs);
      restartTimer.unref();
    });
    // The HTTP server keeps the process alive; this thread must not keep it from exiting.
    thread.unref();
    worker = thread;
  }

  function settle(id: number, reply: Taken | null): void {
    const resolve = waiting.get(id);
    waiting.delete(id);
    resolve?.(reply);
  }

  function sendOutbox(): void {
    const batches = outbox;
    outbox = [];
    if (!worker) {
      for (const { id } of batches) settle(id, null);
      return;
    }
    worker.postMessage(
      { kind: "batches", batches } satisfies ToIngestThread,
      batches.map((b) => b.body),
    );
  }

  /** A flush or a stop: answered `done` (null: the thread went away first, or there is none). */
  function ask(kind: "flush" | "stop"): Promise<unknown> {
    if (!worker) return Promise.resolve(null);
    const id = nextId++;
    const answered = new Promise((resolve) => waiting.set(id, resolve));
    worker.postMessage({ kind, id } satisfies ToIngestThread);
    return answered;
  }

  return {
    start(): void {
      if (!stopping) armed = true;
    },
    /** The answer to a beacon batch (its bytes, which are transferred to the thread) and the video it counted for. */
    async take(body: Uint8Array): Promise<Taken> {
      // The first batch starts the thread (messages posted before it runs wait for it).
      if (!worker && armed && !restartTimer) spawn();
      if (!worker) return NOT_TAKEN;
      // A whole ArrayBuffer of its own is moved; a view into a larger one (Buffer's pool) is copied once.
      const bytes =
        body.buffer instanceof ArrayBuffer && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength
          ? body.buffer
          : body.slice().buffer;
      const id = nextId++;
      const answered = new Promise<Taken | null>((resolve) => waiting.set(id, resolve));
      if (outbox.length === 0) setImmediate(sendOutbox);
      outbox.push({ id, body: bytes });
      return (await answered) ?? NOT_TAKEN;
    },
    /** Resolves once what the thread accepted so far is in the database (at once if the thread is down). */
    async flush(): Promise<void> {
      // Batches still in the outbox go first, so the flush covers every batch already answered.
      if (outbox.length) sendOutbox();
      await ask("flush");
    },
    /** A tenant's collection switch changed (null: any may have). */
    collectionChanged(tenantId: string | null): void {
      worker?.postMessage({ kind: "collection-changed", tenantId } satisfies ToIngestThread);
    },
    /** The running thread's id; null before the first batch and while it is being started again. */
    get threadId(): number | null {
      return worker?.threadId ?? null;
    },
    /** Ends the thread as a crash would (what it holds is lost); it is started again. For tests. */
    async kill(): Promise<void> {
      await worker?.terminate();
    },
    /** Has the thread write what it holds, then ends it. */
    async stop(): Promise<void> {
      const thread = worker;
      if (outbox.length) sendOutbox();
      stopping = true;
      armed = false;
      if (restartTimer) clearTimeout(restartTimer);
      if (!thread) return;
      await ask("stop");
      await thread.terminate();
    },
  };
}

export type IngestThread = ReturnType<typeof createIngestThread>;
