import type { Db } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { LiveLatencyMode, LiveStream, PlaybackPolicy, Prisma } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { validDescription, validMetadata, validTags } from "../videos/cms-fields.ts";
import { validTitle } from "../videos/input-rules.ts";
import { MAX_RECONNECT_WINDOW_SECONDS } from "./broadcast-reconnects.ts";
import { newStreamKey } from "./stream-keys.ts";

/** A stream and its key, shown once: at creation and at each rotation. */
export interface StreamWithKey {
  stream: LiveStream;
  streamKey: string;
}

/** What createLiveStream takes, each field optional with the stream's default. */
export interface NewLiveStream {
  title?: string | null;
  playbackPolicy?: PlaybackPolicy | null;
  latencyMode?: LiveLatencyMode | null;
  recording?: boolean | null;
  reconnectWindowSeconds?: number | null;
  endOnUnpublish?: boolean | null;
  description?: string | null;
  metadata?: readonly { key: string; value: string }[] | null;
  tags?: readonly string[] | null;
}

/** What updateLiveStream changes: the CMS's data already checked, and the stream's own settings as given. */
export interface LiveStreamChanges {
  cms: Pick<Prisma.LiveStreamUpdateInput, "title" | "description" | "metadata" | "tags">;
  recording?: boolean | null;
  endOnUnpublish?: boolean | null;
  /** Undefined: unchanged; null: the default window. */
  reconnectWindowSeconds?: number | null;
}

/** A reconnect window as given (null: the default), or a ValidationError naming the field. */
function validReconnectWindow(seconds: number | null): number | null {
  if (seconds !== null && (seconds < 0 || seconds > MAX_RECONNECT_WINDOW_SECONDS))
    throw new ValidationError(
      "reconnectWindowSeconds",
      `The reconnect window is 0 to ${MAX_RECONNECT_WINDOW_SECONDS} seconds`,
    );
  return seconds;
}

/** One of tenant `tenantId`'s streams, or null (another tenant's is not there for it). */
export function findTenantStream(db: Db, tenantId: string, id: string, query: object = {}): Promise<LiveStream | null> {
  return isUuid(id) ? db.liveStream.findFirst({ ...query, where: { id, tenantId } }) : Promise.resolve(null);
}

/** One of tenant `tenantId`'s streams, or a NotFoundError. */
export async function tenantStream(db: Db, tenantId: string, id: string): Promise<LiveStream> {
  const stream = await findTenantStream(db, tenantId, id);
  if (!stream) throw new NotFoundError("live stream", id);
  return stream;
}

/** A new stream of tenant `tenantId` and its key; the tenant's text is checked (lengths first) before anything else. */
export async function createTenantLiveStream(db: Db, tenantId: string, input: NewLiveStream): Promise<StreamWithKey> {
  const data = {
    title: validTitle(input.title, "Live stream"),
    description: validDescription(input.description ?? null),
    metadata: validMetadata(input.metadata ?? null),
    tags: validTags(input.tags ?? null),
    reconnectWindowSeconds: validReconnectWindow(input.reconnectWindowSeconds ?? null),
  };
  const { key, hash, hint } = newStreamKey();
  const stream = await db.liveStream.create({
    data: {
      ...data,
      tenantId,
      playbackPolicy: input.playbackPolicy ?? "PUBLIC",
      latencyMode: input.latencyMode ?? "STANDARD",
      recording: input.recording ?? true,
      endOnUnpublish: input.endOnUnpublish ?? true,
      keyHash: hash,
      keyHint: hint,
    },
  });
  return { stream, streamKey: key };
}

/** Changes a stream's settings and the CMS's data its next broadcasts start with. */
export async function updateTenantLiveStream(
  db: Db,
  tenantId: string,
  id: string,
  changes: LiveStreamChanges,
): Promise<LiveStream> {
  const data = {
    ...changes.cms,
    ...(typeof changes.recording === "boolean" ? { recording: changes.recording } : {}),
    ...(typeof changes.endOnUnpublish === "boolean" ? { endOnUnpublish: changes.endOnUnpublish } : {}),
    ...(changes.reconnectWindowSeconds !== undefined
      ? { reconnectWindowSeconds: validReconnectWindow(changes.reconnectWindowSeconds) }
      : {}),
  };
  const current = await tenantStream(db, tenantId, id);
  return db.liveStream.update({ where: { id: current.id }, data });
}

/** A new key for the stream; the old one is refused from now on. */
export async function rotateTenantStreamKey(db: Db, tenantId: string, id: string): Promise<StreamWithKey> {
  const current = await tenantStream(db, tenantId, id);
  const { key, hash, hint } = newStreamKey();
  const stream = await db.liveStream.update({ where: { id: current.id }, data: { keyHash: hash, keyHint: hint } });
  return { stream, streamKey: key };
}

/** Disables (its publisher refused, its key kept) or enables the stream. */
export async function setTenantStreamEnabled(db: Db, tenantId: string, id: string, enabled: boolean) {
  const current = await tenantStream(db, tenantId, id);
  return db.liveStream.update({
    where: { id: current.id },
    data: { disabledAt: enabled ? null : (current.disabledAt ?? new Date()) },
  });
}
