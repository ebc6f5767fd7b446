import { request } from "./graphql.ts";
import { CreateUploadMutation } from "./operations.ts";
import type { CreationOptionsInput } from "./video-options.tsx";

/** Chunks of 8 MiB: a multiple of 256 KiB, as GCS upload sessions and S3 parts need. */
const CHUNK_BYTES = 8 * 1024 * 1024;
/** Where an unfinished upload's idempotency key is kept, so a reload finds the same video and URL. */
const PENDING_KEY = "videograph.uploads";

export type UploadState =
  | { phase: "refused"; message: string }
  | { phase: "starting" }
  | { phase: "uploading"; sent: number; total: number; videoId: string; retrying?: string }
  | { phase: "done"; videoId: string }
  | { phase: "failed"; message: string; videoId?: string };

/** Refuses what cannot be a video before anything is sent; null when the file may go. */
function refusal(file: File): string | null {
  if (file.size === 0) return `${file.name} is empty.`;
  const media = file.type.startsWith("video/") || file.type.startsWith("audio/");
  const known = /\.(mp4|m4v|mov|mkv|webm|avi|mpg|mpeg|ts|mts|m2ts|flv|3gp|ogv|wmv|mxf)$/i.test(file.name);
  if (!media && !known) return `${file.name} is not a video file (${file.type || "unknown type"}).`;
  return null;
}

function fingerprint(file: File): string {
  return `${file.name}:${file.size}:${file.lastModified}`;
}

function pending(): Record<string, string> {
  try {
    return JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

function remember(file: File, key: string | null): void {
  const all = pending();
  if (key) all[fingerprint(file)] = key;
  else delete all[fingerprint(file)];
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(all));
}

/** Whether an earlier upload of this file (before a reload) is unfinished: it resumes. */
export function isResumable(file: File): boolean {
  return fingerprint(file) in pending();
}

interface PutAnswer {
  status: number;
  /** The bytes the server holds (from `Range: bytes=0-N`), for a 308. */
  received: number;
  message: string;
}

/** One PUT with XHR, for upload progress events (fetch has none). */
function put(url: string, body: Blob | null, range: string, onProgress: (bytes: number) => void): Promise<PutAnswer> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("content-range", range);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      const match = /bytes=0-(\d+)/.exec(xhr.getResponseHeader("range") ?? "");
      let message = xhr.responseText;
      try {
        message = (JSON.parse(xhr.responseText) as { error?: string }).error ?? message;
      } catch {
        // A plain-text answer is the message.
      }
      resolve({ status: xhr.status, received: match ? Number(match[1]) + 1 : 0, message });
    };
    xhr.onerror = () => reject(new Error("connection lost"));
    xhr.ontimeout = () => reject(new Error("timed out"));
    xhr.send(body);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Uploads one file in Content-Range chunks. Asks the server where to resume (an empty PUT with
 * `bytes *\/size`) before starting and after every dropped connection; a page reload resumes too,
 * as createUpload with the same idempotency key returns the same video and upload URL.
 */
export async function uploadFile(
  file: File,
  onState: (state: UploadState) => void,
  options: CreationOptionsInput = {},
): Promise<void> {
  const refused = refusal(file);
  if (refused) return onState({ phase: "refused", message: refused });
  onState({ phase: "starting" });
  const key = pending()[fingerprint(file)] ?? `console-${crypto.randomUUID()}`;
  remember(file, key);
  let created: Awaited<ReturnType<typeof createUpload>>;
  try {
    created = await createUpload(file, key, options);
  } catch (err) {
    remember(file, null);
    return onState({ phase: "failed", message: (err as Error).message });
  }
  if (created.__typename !== "CreateUploadSuccess") {
    remember(file, null);
    const message =
      created.__typename === "FileTooLargeError"
        ? `${file.name} is larger than the ${formatBytes(created.maxBytes)} this API accepts.`
        : (created.message ?? "The API refused the upload.");
    return onState({ phase: "refused", message });
  }
  const videoId = created.video.id;
  const url = created.uploadUrl;
  const total = file.size;
  let sent = 0;
  let failures = 0;
  const report = (extra: Partial<{ sent: number; retrying: string }> = {}) =>
    onState({ phase: "uploading", sent, total, videoId, ...extra });

  // Where the server is: 0 for a new upload, further on after a reload.
  let needsStatus = true;
  for (;;) {
    try {
      if (needsStatus) {
        const status = await put(url, null, `bytes */${total}`, () => {});
        if (status.status === 200 || status.status === 201 || status.status === 409) break;
        if (status.status !== 308) throw new RefusedUpload(status);
        sent = status.received;
        needsStatus = false;
        report();
      }
      if (sent >= total) break;
      const end = Math.min(sent + CHUNK_BYTES, total);
      const answer = await put(url, file.slice(sent, end), `bytes ${sent}-${end - 1}/${total}`, (bytes) =>
        report({ sent: sent + bytes }),
      );
      if (answer.status === 200 || answer.status === 201) {
        sent = total;
        break;
      }
      if (answer.status !== 308) throw new RefusedUpload(answer);
      sent = answer.received;
      failures = 0;
      report();
    } catch (err) {
      if (err instanceof RefusedUpload && !err.retryable) {
        remember(file, null);
        return onState({ phase: "failed", message: err.message, videoId });
      }
      // A dropped connection or a server that is not there now: wait, then ask where to resume.
      failures += 1;
      const wait = Math.min(30, 2 ** failures);
      for (let left = wait; left > 0; left--) {
        report({ retrying: `${(err as Error).message}: resuming in ${left} s` });
        await sleep(1000);
      }
      needsStatus = true;
    }
  }
  remember(file, null);
  onState({ phase: "done", videoId });
}

/** An answer other than 308/200: 507 and 503 are worth retrying, the rest are final. */
class RefusedUpload extends Error {
  readonly retryable: boolean;
  constructor(answer: PutAnswer) {
    super(answer.message.trim() || `The server answered ${answer.status}`);
    this.retryable = answer.status === 503 || answer.status === 507 || answer.status >= 500;
  }
}

async function createUpload(file: File, key: string, options: CreationOptionsInput) {
  const title = file.name.replace(/\.[^.]+$/, "") || file.name;
  const input = { ...options, title, size: file.size, idempotencyKey: key };
  const answer = await request(CreateUploadMutation, { input });
  return answer.createUpload;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
