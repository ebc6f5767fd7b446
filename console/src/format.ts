export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function formatDate(iso: string): string {
  return new Date(iso).toLocaleString();
}

export function formatPercent(fraction: number): string {
  return `${Math.floor(Math.max(0, Math.min(1, fraction)) * 100)}%`;
}

const TERMINAL = new Set(["READY", "FAILED", "CANCELED", "DISCARDED"]);
/** READY, FAILED, CANCELED and DISCARDED end a video's events. */
export const isFinished = (status: string): boolean => TERMINAL.has(status);

/** A human label for a status enum. */
export const statusLabel = (status: string): string => status.toLowerCase().replaceAll("_", " ");
